#!/usr/bin/env bash
# shellcheck disable=SC2046,SC2086 # byte and option lists are split into words on purpose
# test_smooth_cli.sh: end-to-end tests of `cartoongan smooth --path DATASET`: JPEG, PNG and
# WebP in trainB/ come out in trainB_smooth/ with the same names, formats and sizes (a PNG
# pixel for pixel as OpenCV makes it, read back by build/tests/test_smooth same), existing
# outputs skipped unless --overwrite, a missing or empty trainB/ is one clear line, a
# corrupt image in the middle fails alone and is named, --help lists every flag with its
# default. Prints "ok NAME" / "FAIL NAME" per case and last
# "test_smooth_cli: P passed, F failed". Needs no weights.
# Run from anywhere: tests/test_smooth_cli.sh
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BIN=${CARTOONGAN_BIN:-$ROOT/build/cartoongan}
SAME=${CARTOONGAN_SAME:-$(dirname "$BIN")/tests/test_smooth} # "test_smooth same A B"
IMAGES=$ROOT/tests/data/images
FIXTURES=$ROOT/tests/data/smooth
if [ ! -x "$BIN" ] || [ ! -x "$SAME" ]; then
    echo "FAIL setup: need $BIN and $SAME (run make)"
    echo "test_smooth_cli: 0 passed, 1 failed"
    exit 1
fi
TIMEOUT=""
command -v timeout >/dev/null && TIMEOUT="timeout 300"

T=$(mktemp -d "${TMPDIR:-/tmp}/test_smooth_cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

passed=0 failed=0 checks_failed=0 rc=0

# ---- helpers (the shared ones are in tests/cli_lib.sh) ----
# shellcheck source=tests/cli_lib.sh
. "$ROOT/tests/cli_lib.sh"

expect_no() { [ ! -e "$1" ] || note_failure "unexpected $1"; }
expect_quiet_err() { [ ! -s "$T/err" ] || note_failure "unexpected stderr: $(head -c 300 "$T/err")"; }
expect_lines() { # FILE N: the file has N lines
    local n
    n=$(wc -l <"$1")
    [ "$n" -eq "$2" ] || note_failure "$(basename "$1") has $n lines, expected $2: $(head -c 300 "$1")"
}

bytes() { od -An -tu1 -v -j "$2" -N "$3" "$1" | tr -s ' \n' '  '; }

kind() { # FILE: png, jpeg, webp or ?
    case $(bytes "$1" 0 4) in
    *"137 80 78 71"*) echo png ;;
    *"255 216 255"*) echo jpeg ;;
    *"82 73 70 70"*) echo webp ;;
    *) echo "?" ;;
    esac
}

expect_kind() { # FILE KIND
    local k
    k=$(kind "$1")
    [ "$k" = "$2" ] || note_failure "$1 is $k, expected $2"
}

# Same pixels as another image file (decoded by the library).
expect_same() { # FILE REFERENCE
    local got
    got=$("$SAME" same "$1" "$2" 2>&1) || note_failure "$1 vs $2: $got"
}

expect_differ() { # FILE OTHER: the smoothing changed something
    local got
    got=$("$SAME" same "$1" "$2" 2>&1) && note_failure "$1 is unchanged from $2 ($got)"
}

# dataset DIR FILE...: DIR/trainB holding copies of the files (SRC[:NAME] renames).
dataset() {
    local dir=$1 f
    shift
    mkdir -p "$dir/trainB"
    for f in "$@"; do
        case $f in
        *:*) cp "${f%%:*}" "$dir/trainB/${f#*:}" ;;
        *) cp "$f" "$dir/trainB/" ;;
        esac
    done
    chmod -R u+w "$dir"
}

# ---- tests ----

test_help() {
    cg smooth --help
    expect_rc 0
    local f
    for f in "--path DATASET" "--threads N" --overwrite --quiet "-h, --help" "required" \
        "default: 0, here" "default: skip them" "default: off" trainB trainB_smooth \
        ".jpg, .jpeg, .png or .webp"; do
        expect_out "$f"
    done
    cg smooth -h
    expect_rc 0
    cg help smooth
    expect_rc 0
    expect_out "--path DATASET"
    cg --help
    expect_rc 0
    expect_out smooth
}

test_usage_errors() {
    local args
    for args in "" "--threads -1" "--threads x" "--overwrite=1" "--quiet=yes" "--frobnicate" \
        "extra" "--path"; do
        cg smooth $args
        [ "$args" != "" ] && [ "$args" != "--path" ] && cg smooth --path "$D" $args
        expect_rc 2
        expect_err "try 'cartoongan smooth --help'"
        expect_lines "$T/err" 2
    done
    cg smooth
    expect_err "--path DATASET is required"
}

# JPEG, PNG and WebP in, the same out, with the same names and sizes; odd inputs (gray,
# alpha, 16-bit, EXIF-rotated) go through the reader as for cartoonize.
test_happy_path() {
    dataset "$D/ds" "$IMAGES/plain.jpg:a.jpg" "$FIXTURES/anime0.png:b.png" \
        "$IMAGES/plain.webp:c.webp" "$FIXTURES/odd_17x9.png:d.PNG" "$IMAGES/orient6.jpg:e.jpeg" \
        "$IMAGES/rgba.png:f.png" "$IMAGES/rgb16.png:g.png" "$IMAGES/gray.png:h.png"
    echo "not an image" >"$D/ds/trainB/notes.txt"
    cp "$FIXTURES/anime1.png" "$D/ds/trainB/.hidden.png"
    mkdir "$D/ds/trainB/sub"
    cg smooth --path "$D/ds"
    expect_rc 0
    expect_files "$D/ds/trainB_smooth" "a.jpg
b.png
c.webp
d.PNG
e.jpeg
f.png
g.png
h.png"
    expect_kind "$D/ds/trainB_smooth/a.jpg" jpeg
    expect_kind "$D/ds/trainB_smooth/b.png" png
    expect_kind "$D/ds/trainB_smooth/c.webp" webp
    expect_kind "$D/ds/trainB_smooth/d.PNG" png
    expect_kind "$D/ds/trainB_smooth/e.jpeg" jpeg
    # PNG is lossless: the output is OpenCV's result pixel for pixel
    expect_same "$D/ds/trainB_smooth/b.png" "$FIXTURES/anime0_smooth.png"
    expect_same "$D/ds/trainB_smooth/d.PNG" "$FIXTURES/odd_17x9_smooth.png"
    expect_differ "$D/ds/trainB_smooth/b.png" "$D/ds/trainB/b.png"
    # sizes are kept (decoded, so the EXIF rotation shows: orient6 is 48x32 upright)
    local n s
    for n in a.jpg c.webp f.png g.png h.png; do
        s=$("$SAME" same "$D/ds/trainB/$n" "$D/ds/trainB/$n")
        "$SAME" same "$D/ds/trainB_smooth/$n" "$D/ds/trainB_smooth/$n" | grep -qF "$s" ||
            note_failure "$n: size changed (input $s)"
    done
    "$SAME" same "$D/ds/trainB_smooth/e.jpeg" "$D/ds/trainB_smooth/e.jpeg" | grep -qF "same 48x32" ||
        note_failure "e.jpeg is not 48x32 upright"
    expect_out "smoothed 8 images"
    expect_out "1 other file ignored (not .jpg, .jpeg, .png or .webp)"
    expect_quiet_err
    expect_files "$D/ds/trainB" ".hidden.png
a.jpg
b.png
c.webp
d.PNG
e.jpeg
f.png
g.png
h.png
notes.txt" # the inputs are untouched, and nothing else is written there
}

test_skip_and_overwrite() {
    dataset "$D/ds" "$FIXTURES/anime0.png:a.png" "$FIXTURES/anime1.png:b.png"
    cg smooth --path "$D/ds"
    expect_rc 0
    expect_out "smoothed 2 images"
    echo marker >"$D/ds/trainB_smooth/a.png"
    cg smooth --path "$D/ds"
    expect_rc 0
    expect_out "smoothed 0 images"
    expect_out "2 skipped (already done"
    grep -qx marker "$D/ds/trainB_smooth/a.png" || note_failure "an existing output was redone"
    rm "$D/ds/trainB_smooth/b.png"
    cg smooth --path "$D/ds"
    expect_rc 0
    expect_out "smoothed 1 image in"
    expect_out "1 skipped"
    expect_same "$D/ds/trainB_smooth/b.png" "$FIXTURES/anime1_smooth.png"
    grep -qx marker "$D/ds/trainB_smooth/a.png" || note_failure "an existing output was redone"
    cg smooth --path "$D/ds" --overwrite
    expect_rc 0
    expect_out "smoothed 2 images"
    expect_same "$D/ds/trainB_smooth/a.png" "$FIXTURES/anime0_smooth.png"
    expect_files "$D/ds/trainB_smooth" "a.png
b.png"
}

test_missing_trainB() {
    mkdir -p "$D/ds"
    cg smooth --path "$D/ds"
    expect_rc 1
    expect_err "$D/ds/trainB: no such directory; put the cartoon images to smooth (.jpg, .jpeg, .png or .webp) in $D/ds/trainB"
    expect_lines "$T/err" 1
    expect_no "$D/ds/trainB_smooth"
    cg smooth --path "$D/nowhere"
    expect_rc 1
    expect_err "no dataset at $D/nowhere: no such file or directory"
    expect_lines "$T/err" 1
    expect_no "$D/nowhere"
    echo file >"$D/ds2"
    cg smooth --path "$D/ds2"
    expect_rc 1
    expect_err "no dataset at $D/ds2: not a directory"
    expect_lines "$T/err" 1
}

test_empty_trainB() {
    mkdir -p "$D/ds/trainB"
    cg smooth --path "$D/ds"
    expect_rc 1
    expect_err "no images in $D/ds/trainB (it should hold the cartoon images to smooth: .jpg, .jpeg, .png or .webp files)"
    expect_lines "$T/err" 1
    expect_no "$D/ds/trainB_smooth"
    echo text >"$D/ds/trainB/readme.txt"
    cg smooth --path "$D/ds/"
    expect_rc 1
    expect_err "; 1 other file is there)"
    expect_lines "$T/err" 1
}

# A corrupt image between good ones: reported with its name as it happens, the others are
# all done, the summary lists it, and the exit status is 1; with one thread and many.
test_corrupt_in_middle() {
    local threads
    for threads in 1 0; do
        rm -rf "$D/ds"
        dataset "$D/ds" "$FIXTURES/anime0.png:a.png" "$IMAGES/truncated.png:b.png" \
            "$IMAGES/notimage.jpg:c.jpg" "$FIXTURES/anime1.png:d.png" "$IMAGES/plain.webp:e.webp"
        cg smooth --path "$D/ds" --threads $threads
        expect_rc 1
        expect_err "cartoongan: $D/ds/trainB/b.png: "
        expect_err "cartoongan: $D/ds/trainB/c.jpg: "
        expect_lines "$T/err" 2
        expect_out "smoothed 3 images"
        expect_out "2 failed"
        expect_out "failed: $D/ds/trainB/b.png: "
        expect_out "failed: $D/ds/trainB/c.jpg: "
        expect_files "$D/ds/trainB_smooth" "a.png
d.png
e.webp"
        expect_same "$D/ds/trainB_smooth/d.png" "$FIXTURES/anime1_smooth.png"
    done
    # the failure stays a failure on the next run (nothing was written for it)
    cg smooth --path "$D/ds" --quiet
    expect_rc 1
    expect_lines "$T/err" 2
    [ ! -s "$T/out" ] || note_failure "--quiet printed: $(head -c 200 "$T/out")"
}

test_quiet_and_threads() {
    local f args=()
    for f in "$FIXTURES"/*_smooth.png; do
        f=${f%_smooth.png}.png
        args+=("$f")
    done
    dataset "$D/one" "${args[@]}"
    dataset "$D/many" "${args[@]}"
    cg smooth --path "$D/one" --threads 1 --quiet
    expect_rc 0
    expect_quiet_err
    [ ! -s "$T/out" ] || note_failure "--quiet printed: $(head -c 200 "$T/out")"
    cg smooth --path="$D/many" --threads=5
    expect_rc 0
    expect_out "(5 threads)"
    for f in "${args[@]}"; do
        f=$(basename "$f")
        cmp -s "$D/one/trainB_smooth/$f" "$D/many/trainB_smooth/$f" ||
            note_failure "$f differs between 1 and 5 threads"
        expect_same "$D/many/trainB_smooth/$f" "$FIXTURES/${f%.png}_smooth.png"
    done
}

for t in test_help test_usage_errors test_happy_path test_skip_and_overwrite test_missing_trainB \
    test_empty_trainB test_corrupt_in_middle test_quiet_and_threads; do
    run "$t"
done

echo "test_smooth_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
