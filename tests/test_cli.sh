#!/usr/bin/env bash
# shellcheck disable=SC2046,SC2086 # byte and option lists are split into words on purpose
# test_cli.sh: end-to-end tests of build/cartoongan (cartoonize and export): output layout,
# comparison layouts, resizing, skipping and overwriting, option forms, and that every kind
# of bad input or bad weights fails cleanly, alone, and leaves no file behind. Prints
# "ok NAME" / "FAIL NAME" per case and last "test_cli: P passed, F failed".
#
# Needs only bash and coreutils (image sizes are read from PNG/JPEG/WebP headers with od).
# Weights: $CARTOONGAN_WEIGHTS (set by `make test`), else ../shared/weights/cartoongan.
# Run from anywhere: tests/test_cli.sh
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BIN=${CARTOONGAN_BIN:-$ROOT/build/cartoongan} # CARTOONGAN_BIN: test another build
DATA=$ROOT/tests/data/images
PHOTOS=$ROOT/../shared/data/photos
NPY=$ROOT/../shared/weights/cartoongan

has_styles() { # DIR: holds shinkai and hayao in one of the two accepted forms
    local s
    for s in shinkai hayao; do
        [ -f "$1/$s.safetensors" ] || [ -d "$1/$s" ] || return 1
    done
}
W=${CARTOONGAN_WEIGHTS:-}
if [ -z "$W" ] || ! has_styles "$W"; then W=$NPY; fi
if [ ! -x "$BIN" ] || ! has_styles "$W"; then
    echo "FAIL setup: need $BIN and weights for shinkai and hayao (run make)"
    echo "test_cli: 0 passed, 1 failed"
    exit 1
fi
W=$(cd "$W" && pwd)
export CARTOONGAN_WEIGHTS=$W
TIMEOUT=""
# The bad-input test caps virtual memory so a decoder that trusts a huge header fails
# loudly; set VMEM_LIMIT_KB= (empty) for sanitizer builds, which reserve terabytes.
VMEM_LIMIT_KB=${VMEM_LIMIT_KB-4000000}
command -v timeout >/dev/null && TIMEOUT="timeout 300"

T=$(mktemp -d "${TMPDIR:-/tmp}/test_cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

passed=0 failed=0 checks_failed=0 rc=0

# ---- helpers (the shared ones are in tests/cli_lib.sh) ----
# shellcheck source=tests/cli_lib.sh
. "$ROOT/tests/cli_lib.sh"

# check DESCRIPTION COMMAND...: the command must succeed.
check() {
    local what=$1
    shift
    "$@" || note_failure "$what"
}

expect_file() { if [ ! -s "$1" ]; then note_failure "missing output $1"; fi; }
expect_no() { [ ! -e "$1" ] || note_failure "unexpected $1"; }



expect_kind() { # FILE KIND
    local k
    k=$(kind "$1")
    [ "$k" = "$2" ] || note_failure "$1 is $k, expected $2"
}


# ---- tests ----

test_help() {
    cg --help
    expect_rc 0
    expect_out cartoonize
    expect_out export
    # the summary and cartoonize's line (the man pages' NAME) name all six built-in styles
    expect_out "in six built-in styles"
    grep -q "^  cartoonize .*shinkai, hayao, hosoda, paprika, light_shinkai, light_paprika" "$T/out" ||
        note_failure "cartoongan --help: cartoonize's line lacks the six styles: $(grep '^  cartoonize' "$T/out")"
    cg --version
    expect_rc 0
    expect_out "cartoongan $(sed -n 's/^#define CG_VERSION "\(.*\)"/\1/p' include/cartoongan.h)"
    cg cartoonize --help
    expect_rc 0
    local f
    for f in --styles --all-styles --input-dir --output-dir --weights-dir --max-height \
        --keep-original-size --comparison-view --skip-comparison --overwrite --threads --quiet \
        "default: shinkai" "default: input_images" "default: output_images" "default: 300" \
        "default: smart"; do
        expect_out "$f"
    done
    cg cartoonize -h
    expect_rc 0
    cg export --help
    expect_rc 0
    expect_out --force
    cg
    expect_rc 2
    cg frobnicate
    expect_rc 2
    expect_err "unknown command 'frobnicate'"
}

test_usage_errors() {
    local args
    for args in "--max-height abc" "--max-height 0" "--max-height=-3" "--threads -1" \
        "--comparison-view diagonal" "--overwrite=yes" "--no-such-flag" "--styles" \
        "--output-dir"; do
        cg cartoonize $args "$DATA/plain.png"
        [ "$args" = "--output-dir" ] && cg cartoonize "$DATA/plain.png" --output-dir
        expect_rc 2
        expect_err "try 'cartoongan cartoonize --help'"
        [ "$(wc -l <"$T/err")" -eq 2 ] || note_failure "'$args': usage error is not two lines"
    done
}

test_unknown_style() {
    cg cartoonize --styles shinkai foo --output-dir "$D/out" "$DATA/plain.png"
    expect_rc 2
    # a name that is neither released nor WEIGHTS_DIR/foo.safetensors (custom styles are
    # tested in tests/test_export_cli.sh)
    expect_err "unknown style 'foo': no $W/foo.safetensors (styles in $W: "
    expect_err "try 'cartoongan cartoonize --help'"
    cg cartoonize --styles=shinkai,bar --output-dir "$D/out" "$DATA/plain.png"
    expect_rc 2
    expect_err "unknown style 'bar'"
    expect_no "$D/out"
}

test_layout_files() {
    cg cartoonize --output-dir "$D/out" "$DATA/plain.png" "$DATA/plain.jpg" "$DATA/plain.webp"
    expect_rc 0
    expect_files "$D/out" "comparison/plain.jpg
comparison/plain.png
comparison/plain.webp
shinkai/plain.jpg
shinkai/plain.png
shinkai/plain.webp"
    expect_kind "$D/out/shinkai/plain.png" png
    expect_kind "$D/out/shinkai/plain.jpg" jpeg
    expect_kind "$D/out/shinkai/plain.webp" webp
    expect_kind "$D/out/comparison/plain.jpg" jpeg
    expect_dims "$D/out/shinkai/plain.png" 17x11
    expect_dims "$D/out/shinkai/plain.jpg" 17x11
    expect_dims "$D/out/shinkai/plain.webp" 17x11
    expect_out "cartoonized 3 images (1 style)"
    check "no progress bar when stderr is not a terminal" [ ! -s "$T/err" ]
}

test_layout_nested() {
    mkdir -p "$D/in/a/b" "$D/in/.hidden" "$D/in/c"
    cp "$DATA/plain.png" "$D/in/a/b/x.png"
    cp "$DATA/plain.jpg" "$D/in/a/y.JPG"
    cp "$DATA/plain.webp" "$D/in/top.webp"
    cp "$DATA/plain.png" "$D/in/.hidden/h.png"
    cp "$DATA/plain.png" "$D/in/a/.dot.png"
    echo notes >"$D/in/c/readme.txt"
    cp "$DATA/plain.png" "$D/in/c/image.bmp" # ignored inside directories
    cg cartoonize --output-dir "$D/out" "$D/in/"
    expect_rc 0
    expect_files "$D/out" "comparison/a/b/x.png
comparison/a/y.JPG
comparison/top.webp
shinkai/a/b/x.png
shinkai/a/y.JPG
shinkai/top.webp"
    expect_kind "$D/out/shinkai/a/y.JPG" jpeg
    # a file named directly keeps only its base name
    cg cartoonize --output-dir "$D/out2" --skip-comparison "$D/in/a/b/x.png"
    expect_rc 0
    expect_files "$D/out2" "shinkai/x.png"
}

test_default_dirs() {
    mkdir -p "$D/input_images/sub"
    cp "$DATA/plain.png" "$D/input_images/sub/p.png"
    (cd "$D" && $TIMEOUT "$BIN" cartoonize >"$T/out" 2>"$T/err")
    rc=$?
    expect_rc 0
    expect_files "$D/output_images" "comparison/sub/p.png
shinkai/sub/p.png"
    # an input directory given explicitly wins over --input-dir
    cg cartoonize --input-dir "$D/nonexistent" --output-dir "$D/out" "$D/input_images"
    expect_rc 0
    expect_file "$D/out/shinkai/sub/p.png"
    cg cartoonize --input-dir="$D/input_images" --output-dir="$D/out3" --skip-comparison
    expect_rc 0
    expect_files "$D/out3" "shinkai/sub/p.png"
}

test_empty_input() {
    mkdir -p "$D/empty/sub" "$D/only_other"
    echo x >"$D/only_other/a.txt"
    cg cartoonize --output-dir "$D/out" "$D/empty"
    expect_rc 1
    expect_err "no images found in $D/empty"
    cg cartoonize --output-dir "$D/out" --input-dir "$D/only_other"
    expect_rc 1
    expect_err "no images found in $D/only_other"
    (cd "$D" && $TIMEOUT "$BIN" cartoonize >"$T/out" 2>"$T/err")
    rc=$?
    expect_rc 1
    expect_err "input_images"
    expect_no "$D/out"
}

# comparison layouts: landscape 17x11 plain.png; n = panels (original + styles)
test_comparison_layouts() {
    local view
    for view in "horizontal 34x11" "vertical 17x22" "grid 17x22" "smart 17x22"; do
        set -- $view
        cg cartoonize --styles shinkai --comparison-view "$1" --output-dir "$D/$1-2" "$DATA/plain.png"
        expect_rc 0
        expect_dims "$D/$1-2/comparison/plain.png" "$2"
    done
    for view in "horizontal 51x11" "vertical 17x33" "grid 34x22" "smart 17x33"; do
        set -- $view
        cg cartoonize --styles shinkai hayao --comparison-view="$1" --output-dir "$D/$1-3" \
            "$DATA/plain.png"
        expect_rc 0
        expect_dims "$D/$1-3/comparison/plain.png" "$2"
    done
    # smart, portrait (origami.jpg is 640x864): one row
    cg cartoonize --styles shinkai --max-height 32 --output-dir "$D/portrait" \
        "$PHOTOS/seed_project/origami.jpg"
    expect_rc 0
    expect_dims "$D/portrait/shinkai/origami.jpg" 24x32
    expect_dims "$D/portrait/comparison/origami.jpg" 48x32
    # smart, landscape, 4 panels: two rows of two
    cg cartoonize --styles shinkai,hayao --styles hosoda --max-height 16 --output-dir "$D/four" \
        "$PHOTOS/seed_project/temple.jpg"
    expect_rc 0
    expect_dims "$D/four/comparison/temple.jpg" 48x32
}

test_max_height() {
    # temple.jpg is 674x449: height 40 gives width round(674*40/449) = 60
    cg cartoonize --max-height 40 --output-dir "$D/out" "$PHOTOS/seed_project/temple.jpg"
    expect_rc 0
    expect_dims "$D/out/shinkai/temple.jpg" 60x40
    expect_dims "$D/out/comparison/temple.jpg" 60x80
    # never upscales
    cg cartoonize --max-height=300 --output-dir "$D/out2" "$DATA/plain.png"
    expect_rc 0
    expect_dims "$D/out2/shinkai/plain.png" 17x11
    cg cartoonize --max-height 5 --keep-original-size --output-dir "$D/out3" "$DATA/plain.png"
    expect_rc 0
    expect_dims "$D/out3/shinkai/plain.png" 17x11
    cg cartoonize --max-height 5 --output-dir "$D/out4" "$DATA/plain.png"
    expect_rc 0
    expect_dims "$D/out4/shinkai/plain.png" 8x5
}

test_skip_and_overwrite() {
    mkdir -p "$D/in"
    cp "$DATA/plain.png" "$D/in/a.png"
    cp "$DATA/plain.jpg" "$D/in/b.jpg"
    cg cartoonize --output-dir "$D/out" "$D/in"
    expect_rc 0
    find "$D/out" -type f -exec touch -d "2001-01-01 00:00:00" {} +
    cg cartoonize --output-dir "$D/out" "$D/in"
    expect_rc 0
    expect_out "cartoonized 0 images (1 style)"
    expect_out "2 skipped (already done)"
    check "skipped outputs untouched" [ -z "$(find "$D/out" -type f -newermt 2002-01-01)" ]
    # a finished input is not even decoded again
    cp "$DATA/truncated.jpg" "$D/in/b.jpg"
    cg cartoonize --output-dir "$D/out" "$D/in"
    expect_rc 0
    expect_out "2 skipped (already done)"
    cp "$DATA/plain.jpg" "$D/in/b.jpg"
    # only the missing output is redone
    rm "$D/out/comparison/a.png"
    cg cartoonize --output-dir "$D/out" "$D/in"
    expect_rc 0
    expect_out "cartoonized 1 image (1 style)"
    expect_out "1 skipped"
    expect_file "$D/out/comparison/a.png"
    check "existing style output kept" [ -z "$(find "$D/out/shinkai" -type f -newermt 2002-01-01)" ]
    # a new style for the same images is not "done"
    cg cartoonize --styles shinkai hayao --skip-comparison --output-dir "$D/out" "$D/in"
    expect_rc 0
    expect_out "cartoonized 2 images (2 styles)"
    check "shinkai outputs untouched" [ -z "$(find "$D/out/shinkai" -type f -newermt 2002-01-01)" ]
    expect_file "$D/out/hayao/b.jpg"
    cg cartoonize --overwrite --output-dir "$D/out" "$D/in"
    expect_rc 0
    expect_out "cartoonized 2 images"
    check "--overwrite rewrote all" [ -z "$(find "$D/out/shinkai" "$D/out/comparison" -type f ! -newermt 2002-01-01)" ]
    # nothing to do: the weights are not even needed
    cg cartoonize --weights-dir "$D/no-weights" --output-dir "$D/out" "$D/in"
    expect_rc 0
}

test_styles_forms() {
    mkdir -p "$D/in"
    cp "$DATA/plain.png" "$D/in/p.png"
    # space-separated; the directory after the names is an input, not a style
    cg cartoonize --styles shinkai hayao "$D/in" --output-dir "$D/a"
    expect_rc 0
    expect_files "$D/a" "comparison/p.png
hayao/p.png
shinkai/p.png"
    expect_dims "$D/a/comparison/p.png" 17x33
    # comma-separated, = form, order kept in the comparison
    cg cartoonize --styles=hayao,shinkai --comparison-view horizontal --output-dir "$D/b" "$D/in"
    expect_rc 0
    expect_dims "$D/b/comparison/p.png" 51x11
    cmp -s "$D/a/hayao/p.png" "$D/b/hayao/p.png" || note_failure "hayao differs between runs"
    cg cartoonize --styles shinkai,hayao --output-dir "$D/c" -- "$D/in/p.png"
    expect_rc 0
    expect_files "$D/c" "comparison/p.png
hayao/p.png
shinkai/p.png"
    # --all-styles: all four, in canonical order
    cg cartoonize --all-styles --skip-comparison --max-height 8 --output-dir "$D/d" "$D/in"
    if [ -d "$W/hosoda" ] || [ -f "$W/hosoda.safetensors" ]; then
        expect_rc 0
        expect_files "$D/d" "hayao/p.png
hosoda/p.png
paprika/p.png
shinkai/p.png"
    fi
    # an input named like an option, after --
    cp "$DATA/plain.png" "$D/-dash.png"
    (cd "$D" && $TIMEOUT "$BIN" cartoonize --skip-comparison --output-dir out -- -dash.png \
        >"$T/out" 2>"$T/err")
    rc=$?
    expect_rc 0
    expect_file "$D/out/shinkai/-dash.png"
}

# Each bad input alone: exit 1, one line naming the file, no output and no temp file.
test_bad_inputs() {
    local f
    printf 'BM not really' >"$D/x.bmp"
    : >"$D/empty.jpg"
    for f in "$DATA/empty.png" "$DATA/truncated.jpg" "$DATA/truncated.png" \
        "$DATA/notimage.jpg" "$DATA/huge.png" "$DATA/huge.jpg" "$DATA/huge.webp" \
        "$D/empty.jpg" "$D/missing.jpg" "$D/x.bmp"; do
        rm -rf "$D/out"
        # a decoder that trusted the header would need tens of GB
        (if [ -n "$VMEM_LIMIT_KB" ]; then ulimit -v "$VMEM_LIMIT_KB" 2>/dev/null; fi; cg cartoonize --threads 2 --output-dir "$D/out" "$f"; exit $rc)
        rc=$?
        expect_rc 1
        expect_err "$f: "
        [ "$(wc -l <"$T/err")" -eq 1 ] || note_failure "$f: error is not one line: $(cat "$T/err")"
        expect_files "$D/out" ""
    done
    cg cartoonize --output-dir "$D/out" "$D/missing.jpg"
    expect_err "missing.jpg: no such file or directory"
    expect_out "failed: $D/missing.jpg: no such file or directory"
    # a mistyped file name after --styles is an input, not a style
    cg cartoonize --styles hayao "$D/missing.jpg" --output-dir "$D/out"
    expect_rc 1
    expect_err "missing.jpg: no such file or directory"
    cg cartoonize --output-dir "$D/out" "$D/x.bmp"
    expect_err "x.bmp: unsupported file type (use .jpg, .jpeg, .png, .webp, .heic, .heif, .avif, .gif, .mp4, .mov, .webm or .mkv)"
}

# Unusual but valid images are converted, not refused.
test_converted_inputs() {
    local f n=0
    mkdir -p "$D/in"
    for f in gray.png gray1.png gray_alpha.png palette.png palette_trns.png rgb16.png \
        rgba.png rgba16.png interlaced.png cmyk.jpg gray.jpg orient6.jpg rgba.webp \
        orient6.webp; do
        cp "$DATA/$f" "$D/in/"
        n=$((n + 1))
    done
    cg cartoonize --skip-comparison --output-dir "$D/out" "$D/in"
    expect_rc 0
    expect_out "cartoonized $n images"
    for f in gray.png gray1.png gray_alpha.png palette.png palette_trns.png rgb16.png \
        rgba.png rgba16.png interlaced.png; do
        expect_dims "$D/out/shinkai/$f" "$(dims "$D/in/$f")"
        set -- $(bytes "$D/out/shinkai/$f" 24 2)
        [ "$1 $2" = "8 2" ] || note_failure "$f: output is not 8-bit RGB PNG (depth $1, type $2)"
    done
    expect_dims "$D/out/shinkai/cmyk.jpg" 48x32
    expect_dims "$D/out/shinkai/gray.jpg" 48x32
    expect_dims "$D/out/shinkai/orient6.jpg" 48x32 # the EXIF rotation is applied
    expect_dims "$D/out/shinkai/rgba.webp" 4x1
}

test_batch_with_bad_file() {
    mkdir -p "$D/in"
    cp "$DATA/plain.png" "$D/in/a.png"
    cp "$DATA/truncated.jpg" "$D/in/b.jpg"
    cp "$DATA/plain.jpg" "$D/in/c.jpg"
    cp "$DATA/huge.png" "$D/in/d.png"
    cp "$DATA/plain.webp" "$D/in/e.webp"
    cg cartoonize --styles shinkai hayao --output-dir "$D/out" "$D/in" "$D/nope.png"
    expect_rc 1
    expect_files "$D/out" "comparison/a.png
comparison/c.jpg
comparison/e.webp
hayao/a.png
hayao/c.jpg
hayao/e.webp
shinkai/a.png
shinkai/c.jpg
shinkai/e.webp"
    expect_err "$D/in/b.jpg: "
    expect_err "$D/in/d.png: "
    expect_err "$D/nope.png: no such file or directory"
    expect_out "cartoonized 3 images (2 styles)"
    expect_out "3 failed"
    expect_out "failed: $D/in/b.jpg: "
    expect_out "failed: $D/in/d.png: "
    check "no temp files left in the output tree" [ -z "$(find "$D/out" -name '.*')" ]
    cg cartoonize --quiet --output-dir "$D/out" "$D/in"
    expect_rc 1
    check "--quiet prints nothing on stdout" [ ! -s "$T/out" ]
    expect_err "$D/in/b.jpg: "
}

test_duplicate_names() {
    mkdir -p "$D/a" "$D/b"
    cp "$DATA/plain.png" "$D/a/x.png"
    cp "$DATA/plain.png" "$D/b/x.png"
    cg cartoonize --output-dir "$D/out" "$D/a/x.png" "$D/b/x.png" "$D/a/x.png"
    expect_rc 1
    expect_err "$D/b/x.png: has the same output name"
    expect_out "cartoonized 1 image"
    expect_out "1 failed"
}

test_output_inside_input() {
    mkdir -p "$D/in"
    cp "$DATA/plain.png" "$D/in/p.png"
    cg cartoonize --output-dir "$D/in/out" "$D/in"
    expect_rc 0
    cg cartoonize --output-dir "$D/in/out" "$D/in"
    expect_rc 0
    expect_out "cartoonized 0 images (1 style) in"
    expect_out "1 skipped"
    expect_files "$D/in" "out/comparison/p.png
out/shinkai/p.png
p.png"
}

test_missing_weights() {
    cg cartoonize --weights-dir "$D/nowhere" --output-dir "$D/out" "$DATA/plain.png"
    expect_rc 1
    expect_err "cannot load style 'shinkai'"
    expect_err "make weights"
    mkdir -p "$D/w"
    CARTOONGAN_WEIGHTS=$D/w cg cartoonize --styles hayao --output-dir "$D/out" "$DATA/plain.png"
    expect_rc 1
    expect_err "cannot load style 'hayao' from $D/w/hayao.safetensors"
    expect_err "make weights"
    expect_no "$D/out"
}

test_export_and_corrupt_weights() {
    mkdir -p "$D/w" "$D/bad_npy" "$D/wrong_shape"
    # export the .npy release and check the .safetensors gives the same pictures
    cg export "$NPY/hayao" "$D/w/hayao.safetensors"
    expect_rc 0
    expect_file "$D/w/hayao.safetensors"
    cg export "$NPY/hayao" "$D/w/hayao.safetensors"
    expect_rc 1
    expect_err "--force"
    cg export --force "$NPY/hayao" "$D/w/hayao.safetensors"
    expect_rc 0
    cg cartoonize --weights-dir "$D/w" --styles hayao --output-dir "$D/o1" "$DATA/plain.png"
    expect_rc 0
    cg cartoonize --weights-dir "$NPY" --styles hayao --output-dir "$D/o2" "$DATA/plain.png"
    expect_rc 0
    cmp -s "$D/o1/hayao/plain.png" "$D/o2/hayao/plain.png" ||
        note_failure "safetensors and .npy weights give different outputs"
    # a round trip through export is byte-identical
    cg export "$D/w/hayao.safetensors" "$D/w/again.safetensors"
    expect_rc 0
    cmp -s "$D/w/hayao.safetensors" "$D/w/again.safetensors" || note_failure "re-export differs"

    # truncated .safetensors
    head -c 300000 "$D/w/hayao.safetensors" >"$D/w/shinkai.safetensors"
    cg cartoonize --weights-dir "$D/w" --styles hayao shinkai --output-dir "$D/o3" "$DATA/plain.png"
    expect_rc 1
    expect_err "cannot load style 'shinkai' from $D/w/shinkai.safetensors: "
    expect_no "$D/o3"
    # .npy directory with one truncated tensor, and one with a tensor of the wrong shape
    local f
    for f in "$NPY"/hayao/*.npy; do
        ln -s "$f" "$D/bad_npy/"
        ln -s "$f" "$D/wrong_shape/"
    done
    rm "$D/bad_npy/conv04_1.weight.npy" "$D/wrong_shape/conv04_1.weight.npy"
    head -c 1000 "$NPY/hayao/conv04_1.weight.npy" >"$D/bad_npy/conv04_1.weight.npy"
    cp "$NPY/hayao/conv04_1.bias.npy" "$D/wrong_shape/conv04_1.weight.npy"
    mkdir -p "$D/w2"
    ln -s "$D/bad_npy" "$D/w2/hayao"
    ln -s "$D/wrong_shape" "$D/w2/hosoda"
    cg cartoonize --weights-dir "$D/w2" --styles hayao --output-dir "$D/o4" "$DATA/plain.png"
    expect_rc 1
    expect_err "cannot load style 'hayao' from $D/w2/hayao"
    expect_err "conv04_1.weight"
    cg cartoonize --weights-dir "$D/w2" --styles hosoda --output-dir "$D/o4" "$DATA/plain.png"
    expect_rc 1
    expect_err "cannot load style 'hosoda' from $D/w2/hosoda"
    expect_err "conv04_1.weight"
    expect_no "$D/o4"
    # export refuses bad sources and writes nothing
    cg export "$D/bad_npy" "$D/w/bad.safetensors"
    expect_rc 1
    expect_err "conv04_1.weight"
    cg export "$D/w/shinkai.safetensors" "$D/w/bad2.safetensors"
    expect_rc 1
    expect_files "$D/w" "again.safetensors
hayao.safetensors
shinkai.safetensors"
    cg export "$D/w/hayao.safetensors"
    expect_rc 2
}

test_threads() {
    cg cartoonize --threads 1 --output-dir "$D/t1" "$DATA/plain.png"
    expect_rc 0
    cg cartoonize --threads=3 --output-dir "$D/t3" "$DATA/plain.png"
    expect_rc 0
    cmp -s "$D/t1/shinkai/plain.png" "$D/t3/shinkai/plain.png" ||
        note_failure "output depends on the thread count"
}

# bench names its kernel, and CARTOONGAN_KERNEL picks another one the CPU has (every CPU
# has portable). What each kernel computes is checked in test_model.
test_bench_and_kernels() {
    cg bench --sizes 20x12 --runs 1 --threads 2
    expect_rc 0
    expect_out "kernel: "
    expect_out "20x12 "
    CARTOONGAN_KERNEL=portable cg bench --sizes 20x12 --runs 1
    expect_rc 0
    expect_out "kernel: portable"
    # a name the CPU lacks (or a typo) leaves the default kernel, not the portable one, and
    # says so
    cg bench --sizes 8x8 --runs 1 --threads 1
    local best
    best=$(sed -n 's/^kernel: //p' "$T/out")
    CARTOONGAN_KERNEL=avx3 cg bench --sizes 8x8 --runs 1 --threads 1
    expect_rc 0
    expect_out "kernel: $best"
    expect_err "CARTOONGAN_KERNEL=avx3: not a kernel this CPU has; using $best"
    cg bench --sizes 20x0
    expect_rc 2
    # bench checks its style as cartoonize does: a typo is a usage error naming the styles
    # there are, word for word cartoonize's
    cg cartoonize --styles light_shinkia --output-dir "$D/typo" "$DATA/plain.png"
    expect_rc 2
    sed 's/cartoongan cartoonize/cartoongan bench/' "$T/err" >"$D/cartoonize.err"
    cg bench --style light_shinkia --sizes 20x12 --runs 1
    expect_rc 2
    expect_err "cartoongan bench: unknown style 'light_shinkia': no $W/light_shinkia.safetensors (styles in $W: "
    expect_err "try 'cartoongan bench --help'"
    cmp -s "$T/err" "$D/cartoonize.err" || note_failure "bench's unknown style [$(cat "$T/err")] is not cartoonize's [$(cat "$D/cartoonize.err")]"
    grep -q "make weights" "$T/err" && note_failure "bench's unknown style suggests make weights"
    cg bench --style shinkai,hayao --sizes 20x12 --runs 1
    expect_rc 2
    expect_err "--style needs one style name"
    cg bench --style ../shinkai --sizes 20x12 --runs 1
    expect_rc 2
    expect_err "invalid style name '../shinkai'"
    # a built-in style in any case
    cg bench --style HaYaO --sizes 20x12 --runs 1
    expect_rc 0
    expect_out "20x12 "
    CARTOONGAN_KERNEL=portable cg cartoonize --output-dir "$D/kp" "$DATA/plain.png"
    expect_rc 0
    expect_file "$D/kp/shinkai/plain.png"
}

# SIGKILL mid-write leaves at most a hidden temporary file, never a partial output; the next
# run removes such leftovers once they are unlocked and 10 minutes old, and keeps the files
# of a writer still alive. An LD_PRELOAD shim slows fsync down to 1 s, so the kill surely
# lands while a temporary file exists.
test_kill_mid_write() {
    if ! command -v cc >/dev/null; then return; fi
    cat >"$D/slowsync.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <unistd.h>
int fsync(int fd) {
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    sleep(1);
    return real(fd);
}
EOF
    cc -shared -fPIC -o "$D/slowsync.so" "$D/slowsync.c" -ldl || { note_failure "cannot build the fsync shim"; return; }
    mkdir -p "$D/in"
    local i pid tmps f round
    for i in 1 2 3; do
        cp "$DATA/plain.png" "$D/in/p$i.png"
        cp "$DATA/plain.jpg" "$D/in/j$i.jpg"
        cp "$DATA/plain.webp" "$D/in/w$i.webp"
    done
    for round in 1 2 3; do
        # (ASan's runtime must come first in the library list; the shim is harmless to it)
        LD_PRELOAD=$D/slowsync.so ASAN_OPTIONS=verify_asan_link_order=0:${ASAN_OPTIONS:-} \
            "$BIN" cartoonize --max-height 32 --output-dir "$D/out" "$D/in" >/dev/null 2>&1 &
        pid=$!
        # each round lets one more output finish first, so whole outputs and leftovers mix
        tmps=""
        for i in $(seq 400); do
            if [ "$(find "$D/out" -type f ! -name '.*' 2>/dev/null | wc -l)" -ge $round ]; then
                tmps=$(find "$D/out" -name '.*.tmp-*' -newer "$D/in" 2>/dev/null)
                [ -n "$tmps" ] && break
            fi
            sleep 0.05
        done
        touch "$D/in" # leftovers of this round are older than the next round's
        kill -9 $pid 2>/dev/null
        wait $pid 2>/dev/null
        [ -n "$tmps" ] || note_failure "round $round: no temporary file seen before the kill"
        for f in $tmps; do [ -e "$f" ] || note_failure "round $round: $f gone: not killed mid-write"; done
    done
    # every output under its final name is whole: all of them decode
    mkdir -p "$D/check"
    cg cartoonize --skip-comparison --max-height 8 --output-dir "$D/check" "$D/out"
    expect_rc 0
    tmps=$(find "$D/out" -name '.*.tmp-*' | wc -l)
    check "killed runs left their temporary files" [ "$tmps" -ge 1 ]
    # young leftovers are kept (their writer may be alive); old unlocked ones are removed,
    # an old one that a live process holds locked is kept
    cg cartoonize --max-height 32 --output-dir "$D/out" "$D/in"
    expect_rc 0
    check "young temporary files kept" [ "$(find "$D/out" -name '.*.tmp-*' | wc -l)" -eq "$tmps" ]
    find "$D/out" -name '.*.tmp-*' -exec touch -d "2001-01-01 00:00:00" {} +
    local held=$D/out/shinkai/.held.png.tmp-AbC123 lockpid=""
    : >"$held"
    touch -d "2001-01-01 00:00:00" "$held"
    if command -v flock >/dev/null; then
        # the subshell becomes the sleep, which holds the lock until it is killed
        (exec 9<"$held" && flock -x 9 && exec sleep 30) &
        lockpid=$!
        sleep 0.3
    fi
    cg cartoonize --max-height 32 --output-dir "$D/out" "$D/in"
    expect_rc 0
    expect_out "9 skipped"
    if [ -n "$lockpid" ]; then
        check "a locked temporary file is kept" [ -e "$held" ]
        kill $lockpid 2>/dev/null
        wait $lockpid 2>/dev/null
    fi
    rm -f "$held"
    check "stale temporary files removed" [ -z "$(find "$D/out" -name '.*.tmp-*')" ]
    expect_files "$D/out" "$(cd "$D/in" && for f in *; do echo "comparison/$f"; echo "shinkai/$f"; done | LC_ALL=C sort)"
}

# --max-pixels: the decode limit, checked from the header (plain.png is 17x11 = 187 pixels)
test_max_pixels() {
    cg cartoonize --max-pixels 186 --output-dir "$D/out" "$DATA/plain.png"
    expect_rc 1
    expect_err "$DATA/plain.png: image is 17x11 (187 pixels), over the limit of 186 pixels"
    expect_files "$D/out" ""
    cg cartoonize --max-pixels=187 --skip-comparison --output-dir "$D/out" "$DATA/plain.png"
    expect_rc 0
    expect_files "$D/out" "shinkai/plain.png"
    local args
    for args in "--max-pixels 0" "--max-pixels -5" "--max-pixels 1e6" "--max-pixels 99999999999"; do
        cg cartoonize $args "$DATA/plain.png"
        expect_rc 2
        expect_err "invalid value"
    done
    cg cartoonize --help
    expect_out "--max-pixels N"
    expect_out "(default: 100000000)"
}

# Damaged photos (bit flips, truncations, header edits) are decoded or refused, never a
# crash or a hang; tools/mutation_check.sh has the details, and runs 300+ by hand.
test_mutations() {
    MUTATION_FAILURES=$D/failures CARTOONGAN_BIN=$BIN tools/mutation_check.sh 60 >"$T/out" 2>&1
    rc=$?
    expect_rc 0
    expect_out "60 files"
    expect_out "0 crashes, 0 hangs"
}

# The README's first command on a fresh machine: `make` sets up input_images/ (the
# default --input-dir) with the seed's two sample photos, and `cartoongan cartoonize` with
# no arguments cartoonizes them. The Makefile's rule runs here into a temp folder, from
# ../shared's copy, else from the one `make` put in the repository (no download in tests).
test_sample_photos() {
    local src=$PHOTOS/seed_project
    [ -f "$src/temple.jpg" ] || src=$ROOT/input_images
    if [ ! -f "$src/temple.jpg" ] || [ ! -f "$src/origami.jpg" ] || ! command -v make >/dev/null; then
        echo "  skipped: no sample photos to set up from (../shared, or input_images/ after make), or no make" >&2
        return
    fi
    # the rule is for the folder cartoonize reads by default, and `make` alone runs it
    make -C "$ROOT" -n -s --no-print-directory input_images >/dev/null 2>&1 ||
        note_failure "the Makefile has no rule for input_images"
    make -C "$ROOT" -n --no-print-directory PHOTOS_DIR="$D/fresh" 2>/dev/null | grep -q "fetch_photos.sh .* $D/fresh" ||
        note_failure "plain make does not set up the sample photos"
    make -C "$ROOT" -s --no-print-directory PHOTOS_DIR="$D/input_images" SHARED_PHOTOS="$src" "$D/input_images" \
        >"$T/out" 2>"$T/err"
    rc=$?
    expect_rc 0
    expect_files "$D/input_images" "origami.jpg
temple.jpg"
    (cd "$D" && $TIMEOUT "$BIN" cartoonize >"$T/out" 2>"$T/err")
    rc=$?
    expect_rc 0
    expect_out "cartoonized 2 images (1 style)"
    expect_files "$D/output_images" "comparison/origami.jpg
comparison/temple.jpg
shinkai/origami.jpg
shinkai/temple.jpg"
    expect_dims "$D/output_images/shinkai/temple.jpg" 450x300  # 674x449 at --max-height 300
    expect_dims "$D/output_images/shinkai/origami.jpg" 222x300 # 640x864
}

# The seed project's light styles (weights/light_*.safetensors, made by `make` from the TF2
# checkpoints) go wherever a style goes: photos, GIFs, videos, the comparison, bench;
# --all-styles still means the four full ones. Their pixels are checked against the
# PyTorch port in tests/test_light.c.
test_light_styles() {
    if [ ! -f "$W/light_shinkai.safetensors" ] || [ ! -f "$W/light_paprika.safetensors" ]; then
        note_failure "no light styles in $W (make sets them up)"
        return
    fi
    local MEDIA=$ROOT/tests/data/media
    cg cartoonize --styles light_shinkai,light_paprika --output-dir "$D/out" "$DATA/plain.png" \
        "$MEDIA/anim.gif" "$MEDIA/clip.mp4"
    expect_rc 0
    expect_out "cartoonized 1 image, 1 GIF, 1 video (2 styles)"
    expect_files "$D/out" "comparison/anim.gif
comparison/clip.mp4
comparison/plain.png
light_paprika/anim.gif
light_paprika/clip.mp4
light_paprika/plain.png
light_shinkai/anim.gif
light_shinkai/clip.mp4
light_shinkai/plain.png"
    expect_dims "$D/out/light_shinkai/plain.png" "$(dims "$DATA/plain.png")"
    cmp -s "$D/out/light_shinkai/plain.png" "$D/out/light_paprika/plain.png" &&
        note_failure "the two light styles gave the same picture"
    cg cartoonize --all-styles --skip-comparison --output-dir "$D/all" "$DATA/plain.png"
    expect_rc 0
    [ ! -e "$D/all/light_shinkai" ] || note_failure "--all-styles took a light style"
    cg bench --style light_paprika --sizes 32x24 --runs 1 --threads 1
    expect_rc 0
    expect_out "32x24"
    # their names in any case, as the full styles' (a custom style's is a file name, kept
    # as typed: tests/test_export_cli.sh), written under the names' own spelling
    cg cartoonize --styles Light_Shinkai,LIGHT_PAPRIKA,light_shinkai,Shinkai --skip-comparison \
        --output-dir "$D/case" "$DATA/plain.png"
    expect_rc 0
    expect_files "$D/case" "light_paprika/plain.png
light_shinkai/plain.png
shinkai/plain.png"
    cmp -s "$D/case/light_shinkai/plain.png" "$D/out/light_shinkai/plain.png" ||
        note_failure "--styles Light_Shinkai differs from light_shinkai"
    cg bench --style Light_Paprika --sizes 32x24 --runs 1 --threads 1
    expect_rc 0
    expect_out "32x24"
    # a built-in style that is missing is not a usage error: the loader says where it
    # looked and how to fetch it, for bench as for cartoonize
    mkdir -p "$D/empty"
    CARTOONGAN_WEIGHTS=$D/empty cg bench --style LIGHT_SHINKAI --sizes 32x24 --runs 1
    expect_rc 1
    expect_err "cannot load style 'light_shinkai' from $D/empty/light_shinkai.safetensors"
    expect_err "fetch-weights light_shinkai"
}

for t in test_help test_usage_errors test_unknown_style test_layout_files test_layout_nested \
    test_default_dirs test_empty_input test_comparison_layouts test_max_height \
    test_skip_and_overwrite test_styles_forms test_bad_inputs test_converted_inputs \
    test_batch_with_bad_file test_duplicate_names test_output_inside_input \
    test_missing_weights test_export_and_corrupt_weights test_threads test_bench_and_kernels test_kill_mid_write \
    test_max_pixels test_mutations test_sample_photos test_light_styles; do
    run "$t"
done

echo "test_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
