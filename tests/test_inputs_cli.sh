#!/usr/bin/env bash
# shellcheck disable=SC2086 # option lists are split into words on purpose
# test_inputs_cli.sh: end-to-end tests of what `cartoongan cartoonize` takes in and says
# about it (issue 12): files of types not handled are counted in the summary, the summary
# names each kind in its own words, "--styles 'a, b'" works, an output folder that cannot
# be written is reported before any weights are read, a big image shows its own progress
# bar on a terminal, damaged JPEGs with a warning, PNG eXIf orientation, animated WebP in
# and out, HEIC/AVIF photos, HDR videos, and inputs by URL against a local server.
# Prints "ok NAME" / "FAIL NAME" per case and last "test_inputs_cli: P passed, F failed".
# Run from anywhere: tests/test_inputs_cli.sh
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BIN=${CARTOONGAN_BIN:-$ROOT/build/cartoongan}
PROBE=${CARTOONGAN_PROBE:-$(dirname "$BIN")/tests/test_media}
MEDIA=$ROOT/tests/data/media
IMAGES=$ROOT/tests/data/images
W=${CARTOONGAN_WEIGHTS:-$ROOT/weights}
if [ ! -x "$BIN" ] || [ ! -x "$PROBE" ] || { [ ! -f "$W/shinkai.safetensors" ] && [ ! -d "$W/shinkai" ]; }; then
    echo "FAIL setup: need $BIN, $PROBE and the shinkai weights in $W (run make)"
    echo "test_inputs_cli: 0 passed, 1 failed"
    exit 1
fi
export CARTOONGAN_WEIGHTS=$W
TIMEOUT=""
command -v timeout >/dev/null && TIMEOUT="timeout 300"

T=$(mktemp -d "${TMPDIR:-/tmp}/test_inputs_cli.XXXXXX") || exit 1
SERVER_PID=
trap 'rm -rf "$T"; [ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null' EXIT

passed=0 failed=0 checks_failed=0 rc=0

# shellcheck source=tests/cli_lib.sh
. "$ROOT/tests/cli_lib.sh"

expect_probe() { # FILE EXPECTED: test_media's one-line description
    local got
    got=$("$PROBE" probe "$1" 2>&1)
    [ "$got" = "$2" ] || note_failure "$1: probe says '$got', expected '$2'"
}

expect_files() { # DIR "LIST": the files under DIR, sorted, one per line
    local got
    got=$(cd "$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)
    [ "$got" = "$2" ] || note_failure "files under $1: [$(echo $got)], expected [$(echo $2)]"
}

# ---- tests ----

# Files of other types in a folder are counted, by extension, at the end; the summary
# names each kind of input in its own words.
test_skipped_types_and_summary() {
    mkdir -p "$D/in/sub"
    cp "$IMAGES/plain.png" "$IMAGES/plain.jpg" "$D/in/"
    cp "$MEDIA/still.gif" "$D/in/sub/"
    : >"$D/in/a.tiff"
    : >"$D/in/sub/b.TIFF"
    : >"$D/in/c.bmp"
    : >"$D/in/README"
    cg cartoonize --output-dir "$D/out" "$D/in"
    expect_rc 0
    expect_out "cartoonized 2 images, 1 GIF (1 style)"
    expect_out "skipped 4 files of types not handled: .tiff (2), .bmp (1), no extension (1)"
    # nothing handled at all: the error says what was there
    cg cartoonize --output-dir "$D/out2" "$D/in/sub" "$D/in/c.bmp"
    expect_rc 1
    expect_err "c.bmp: unsupported file type"
    rm -rf "$D/in/sub/still.gif"
    cg cartoonize --output-dir "$D/out3" "$D/in/sub"
    expect_rc 1
    expect_err "no images found in $D/in/sub"
    expect_err "skipped 1 file of types not handled: .tiff (1)"
    [ ! -e "$D/out3" ] || note_failure "an output folder was made for nothing"
}

# "--styles 'shinkai, hayao'": one argument with spaces after the commas.
test_styles_with_spaces() {
    [ -f "$W/hayao.safetensors" ] || [ -d "$W/hayao" ] || return 0
    cg cartoonize --skip-comparison --styles "shinkai, hayao" --output-dir "$D/out" "$IMAGES/plain.png"
    expect_rc 0
    expect_files "$D/out" "hayao/plain.png
shinkai/plain.png"
    cg cartoonize --skip-comparison --styles="hayao ,shinkai" --output-dir "$D/out2" "$IMAGES/plain.png"
    expect_rc 0
    expect_out "(2 styles)"
}

# An output folder that cannot be made or written is said before any weights are read:
# with weights that do not exist, the folder's error is the one reported.
test_output_dir_checked_first() {
    : >"$D/file"
    cg cartoonize --weights-dir "$D/none" --output-dir "$D/file/out" "$IMAGES/plain.png"
    expect_rc 1
    expect_err "$D/file/out: cannot use as the output folder: $D/file is not a folder"
    ! grep -q "style" "$T/err" || note_failure "weights were looked at first: $(cat "$T/err")"
    cg cartoonize --weights-dir "$D/none" --output-dir "$D/file" "$IMAGES/plain.png"
    expect_rc 1
    expect_err "$D/file: cannot use as the output folder: $D/file is not a folder"
    # a folder still to be made is not made by a run that fails before writing
    cg cartoonize --weights-dir "$D/none" --output-dir "$D/new/out" "$IMAGES/plain.png"
    expect_rc 1
    expect_err "cannot load style"
    [ ! -e "$D/new" ] || note_failure "the output folder was made by a run that wrote nothing"
}

# A big image shows its own bar on a terminal (a percentage, elapsed time and ETA) once it
# has taken a second; a small one leaves no bar behind; --quiet draws none.
test_progress_one_image() {
    command -v script >/dev/null && command -v python3 >/dev/null || {
        note_failure "needs script(1) and python3"
        return
    }
    # a 900x600 PNG, made here so no big file is committed
    python3 - "$D/big.png" <<'PY'
import struct, sys, zlib
w, h = 900, 600
raw = bytearray()
for y in range(h):
    raw.append(0)
    raw += bytes(v for x in range(w) for v in ((x + y) % 256, (x * 2) % 256, (y * 3) % 256))
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
    script -qec "$BIN cartoonize --keep-original-size --skip-comparison --output-dir $D/out $D/big.png" /dev/null >"$T/tty" 2>&1
    tr '\r' '\n' <"$T/tty" >"$T/lines"
    grep -Eq '^\[[#.]+\] +[0-9]+%  [0-9]+:[0-9]{2} elapsed  ETA ' "$T/lines" ||
        note_failure "no bar for one big image: $(tail -3 "$T/lines")"
    grep -q "cartoonized 1 image (1 style)" "$T/lines" || note_failure "no summary: $(tail -3 "$T/lines")"
    script -qec "$BIN cartoonize --skip-comparison --output-dir $D/out2 $IMAGES/plain.png" /dev/null >"$T/tty" 2>&1
    ! grep -q "elapsed" "$T/tty" || note_failure "a bar for a small image"
    script -qec "$BIN cartoonize --quiet --keep-original-size --skip-comparison --output-dir $D/out3 $D/big.png" /dev/null >"$T/tty" 2>&1
    ! grep -q "elapsed" "$T/tty" || note_failure "a bar with --quiet"
}

# Inputs by URL, from a local server (tests/http_stub.py) on 127.0.0.1: each downloaded to
# a private temporary folder (gone afterwards), named after the URL's last path segment or
# the Content-Disposition name, with the extension of what it holds; every failure is one
# line naming the URL and the reason, and the batch goes on.
start_server() {
    [ -n "$SERVER_PID" ] && return 0
    command -v python3 >/dev/null || {
        note_failure "python3 is needed for the URL tests (tools/install_deps.sh installs it)"
        return 1
    }
    python3 "$ROOT/tests/http_stub.py" --port-file "$T/ports" --stall 20 --lifetime 600 &
    SERVER_PID=$!
    local i
    for i in $(seq 100); do
        [ -s "$T/ports" ] && break
        sleep 0.1
    done
    PORT=$(awk '$1 == "http" { print $2 }' "$T/ports" 2>/dev/null)
    [ -n "$PORT" ] || { note_failure "the test server did not start"; return 1; }
    URL=http://127.0.0.1:$PORT
}

test_url_inputs() {
    start_server || return
    mkdir -p "$D/tmp"
    TMPDIR=$D/tmp cg cartoonize --output-dir "$D/out" "$URL/photo.jpg" "$URL/cd" \
        "$URL/anim.gif" "$URL/clip.mp4" "$URL/path/x.webp" "$URL/query.jpg?x=1" "$URL/redirect-chain/2"
    expect_rc 1 # /redirect-chain/2 ends at photo.jpg: the same output name as the first
    expect_out "cartoonized 4 images, 1 GIF, 1 video (1 style)"
    expect_out "failed: $URL/redirect-chain/2: has the same output name (photo.jpg) as $URL/photo.jpg"
    expect_files "$D/out" "comparison/anim.gif
comparison/clip.mp4
comparison/holiday photo.png
comparison/photo.jpg
comparison/query.jpg
comparison/x.webp
shinkai/anim.gif
shinkai/clip.mp4
shinkai/holiday photo.png
shinkai/photo.jpg
shinkai/query.jpg
shinkai/x.webp"
    [ "$(kind "$D/out/shinkai/holiday photo.png")" = png ] || note_failure "holiday photo.png is not a PNG"
    expect_dims "$D/out/shinkai/photo.jpg" "$(dims "$IMAGES/plain.jpg")"
    expect_probe "$D/out/shinkai/anim.gif" "$("$PROBE" probe "$MEDIA/anim.gif")"
    [ -z "$(ls -A "$D/tmp")" ] || note_failure "downloads left behind: $(ls -A "$D/tmp")"
}

test_url_failures() {
    start_server || return
    mkdir -p "$D/tmp"
    TMPDIR=$D/tmp cg cartoonize --output-dir "$D/out" --download-timeout 2 --max-download 1 \
        "$URL/missing" "$URL/page.html" "$URL/slow" "$URL/big-chunked" "$URL/loop" \
        "http://nothing.invalid/x.jpg" "ftp://127.0.0.1/x.jpg" "$IMAGES/plain.png"
    expect_rc 1
    expect_out "cartoonized 1 image (1 style)"
    expect_out "failed: $URL/missing: HTTP 404 Not Found"
    expect_out "failed: $URL/page.html: not an image, GIF, WebP or video (the server sent content type text/html"
    expect_out "failed: $URL/slow: timed out after 2 s"
    expect_out "failed: $URL/big-chunked: larger than the 1048576-byte limit"
    expect_out "failed: $URL/loop: too many redirects (more than 5)"
    expect_out "failed: http://nothing.invalid/x.jpg: cannot resolve host nothing.invalid"
    expect_out "failed: ftp://127.0.0.1/x.jpg: only http and https URLs are supported"
    expect_files "$D/out" "comparison/plain.png
shinkai/plain.png"
    [ -z "$(ls -A "$D/tmp")" ] || note_failure "downloads left behind: $(ls -A "$D/tmp")"
    # an output folder that cannot be written is reported before anything is downloaded
    : >"$D/file"
    TMPDIR=$D/tmp cg cartoonize --output-dir "$D/file/out" "$URL/slow"
    expect_rc 1
    expect_err "cannot use as the output folder"
}

# The files of ../shared/data/hunt/ (copied into tests/data/), each as its README says.
test_hunt_files() {
    cg cartoonize --output-dir "$D/out" "$IMAGES/jpeg_missing_eoi.jpg" \
        "$IMAGES/png_exif_orientation6_4x2.png" "$MEDIA/webp_animated_2frames.webp" \
        "$MEDIA/video_hlg_bt2020_10bit.mov"
    expect_rc 0
    expect_out "cartoonized 2 images, 1 animated WebP, 1 video (1 style)"
    expect_err "warning: $IMAGES/jpeg_missing_eoi.jpg: the data ends without an end-of-image marker"
    expect_err "warning: $MEDIA/video_hlg_bt2020_10bit.mov: HLG HDR video: its colours are not tone-mapped"
    expect_dims "$D/out/shinkai/jpeg_missing_eoi.jpg" 32x32
    expect_dims "$D/out/shinkai/png_exif_orientation6_4x2.png" 2x4 # turned upright
    expect_probe "$D/out/shinkai/webp_animated_2frames.webp" "webp 8x8 frames=2 loop=0 alpha=0 durations=200,200"
    expect_probe "$D/out/comparison/webp_animated_2frames.webp" "webp 8x16 frames=2 loop=0 alpha=0 durations=200,200"
    [ -s "$D/out/shinkai/video_hlg_bt2020_10bit.mp4" ] || note_failure "no video out"
    # --quiet: no warnings
    cg cartoonize --quiet --overwrite --output-dir "$D/out" "$IMAGES/jpeg_missing_eoi.jpg" \
        "$MEDIA/video_hlg_bt2020_10bit.mov"
    expect_rc 0
    [ ! -s "$T/err" ] || note_failure "warnings with --quiet: $(cat "$T/err")"
    # a JPEG cut short is still refused, with the rows it has
    cg cartoonize --output-dir "$D/out2" "$IMAGES/jpeg_truncated_rows.jpg"
    expect_rc 1
    expect_err "jpeg_truncated_rows.jpg: truncated JPEG: only 16 of 32 rows present"
}

# Animated WebP in and out, like GIFs: the frames, durations and loop count kept, each frame
# within 30 dB of the photo path on the same composited frame, alpha kept where a frame is
# see-through, --frame-frequency, --max-num-frames and --convert-gif-to-mp4 applied. The
# inputs are made here from the committed GIFs (test_media towebp).
test_webp_animated() {
    mkdir -p "$D/in" "$D/frames"
    "$PROBE" towebp "$MEDIA/anim.gif" "$D/in/anim.webp" || note_failure "cannot make anim.webp"
    "$PROBE" towebp "$MEDIA/dispose_none.gif" "$D/in/opaque.webp" || note_failure "cannot make opaque.webp"
    expect_probe "$D/in/anim.webp" "webp 64x48 frames=8 loop=0 alpha=1 durations=100,200,50,70,0,300,150,100"
    cg cartoonize --skip-comparison --output-dir "$D/out" "$D/in"
    expect_rc 0
    expect_out "cartoonized 2 animated WebPs (1 style)"
    expect_probe "$D/out/shinkai/anim.webp" "webp 64x48 frames=8 loop=0 alpha=1 durations=100,200,50,70,0,300,150,100"
    expect_probe "$D/out/shinkai/opaque.webp" "webp 8x6 frames=3 loop=0 alpha=0 durations=100,100,100"
    # against the photo path: an opaque animation's frames (on white, for the see-through one
    # the parts kept transparent differ from the photo path's stylized white)
    "$PROBE" frames "$D/in/opaque.webp" "$D/frames" || note_failure "cannot extract the frames"
    cg cartoonize --skip-comparison --output-dir "$D/still" "$D/frames"
    expect_rc 0
    local line
    line=$("$PROBE" psnr "$D/out/shinkai/opaque.webp" "$D/still/shinkai") || note_failure "PSNR below 30 dB: $line"
    echo "  opaque.webp vs the photo path, $line"
    # frequency 3: frames 0, 3, 6 shown for (100+200+50), (70+100+300), (150+100) ms (a 0 plays
    # as 100 ms, as browsers play it); then --max-num-frames cuts, with the MP4s too
    cg cartoonize --frame-frequency 3 --skip-comparison --output-dir "$D/f3" "$D/in/anim.webp"
    expect_rc 0
    expect_probe "$D/f3/shinkai/anim.webp" "webp 64x48 frames=3 loop=0 alpha=1 durations=350,470,250"
    cg cartoonize --gif-frame-frequency 3 --max-num-frames 2 --convert-gif-to-mp4 --output-dir "$D/m2" "$D/in/anim.webp"
    expect_rc 0
    expect_err "warning: $D/in/anim.webp: 3 frames kept by --frame-frequency; only the first 2 are cartoonized"
    expect_probe "$D/m2/shinkai/anim.webp" "webp 64x48 frames=2 loop=0 alpha=1 durations=350,470"
    expect_probe "$D/m2/comparison/anim.webp" "webp 64x96 frames=2 loop=0 alpha=0 durations=350,470"
    expect_probe "$D/m2/shinkai/mp4/anim.mp4" "video 64x48 frames=2 fps=100/41 duration=0.820 codec=h264 audio=none"
    [ -s "$D/m2/comparison/mp4/anim.mp4" ] || note_failure "no comparison MP4"
    # a damaged animation fails alone, leaving nothing
    head -c 300 "$D/in/anim.webp" >"$D/in/cut.webp"
    cg cartoonize --output-dir "$D/bad" "$D/in/cut.webp" "$D/in/opaque.webp"
    expect_rc 1
    expect_out "failed: $D/in/cut.webp: truncated WebP"
    [ ! -e "$D/bad/shinkai/cut.webp" ] || note_failure "a damaged WebP left an output"
    [ -z "$(find "$D/bad" -name '.*')" ] || note_failure "temporary files left: $(find "$D/bad" -name '.*')"
}

# HEIC and AVIF photos (tools/make_heif_fixtures.c): turned upright by their irot/imir (the
# coded picture of orient6.heic is 64x96), written as JPEG, or PNG when they have alpha; a
# folder of them is searched like any other; the pixel limit holds before decoding.
test_heic_avif() {
    mkdir -p "$D/in"
    cp "$IMAGES/orient6.heic" "$IMAGES/plain.avif" "$IMAGES/rgb10.heic" "$IMAGES/rgba.heic" "$D/in/"
    cp "$IMAGES/orient2.heic" "$D/in/UPPER.HEIC"
    cg cartoonize --output-dir "$D/out" "$D/in"
    expect_rc 0
    expect_out "cartoonized 5 images (1 style)"
    expect_files "$D/out" "comparison/UPPER.jpg
comparison/orient6.jpg
comparison/plain.jpg
comparison/rgb10.jpg
comparison/rgba.png
shinkai/UPPER.jpg
shinkai/orient6.jpg
shinkai/plain.jpg
shinkai/rgb10.jpg
shinkai/rgba.png"
    local f
    for f in UPPER.jpg orient6.jpg plain.jpg rgb10.jpg rgba.png; do
        expect_dims "$D/out/shinkai/$f" 96x64
    done
    [ "$(kind "$D/out/shinkai/rgba.png")" = png ] || note_failure "rgba.png is not a PNG"
    [ "$(kind "$D/out/shinkai/orient6.jpg")" = jpeg ] || note_failure "orient6.jpg is not a JPEG"
    # done already: skipped by its output's name
    cg cartoonize --output-dir "$D/out" "$D/in/rgba.heic"
    expect_rc 0
    expect_out "1 skipped (already done)"
    cg cartoonize --max-pixels 6000 --output-dir "$D/out2" "$D/in/plain.avif"
    expect_rc 1
    expect_out "failed: $D/in/plain.avif:"
    expect_out "image is 96x64 (6144 pixels), over the limit of 6000 pixels"
    [ ! -e "$D/out2/shinkai" ] || note_failure "an output for a refused file"
}

TESTS="test_skipped_types_and_summary test_styles_with_spaces test_output_dir_checked_first
    test_progress_one_image test_hunt_files test_heic_avif test_webp_animated test_url_inputs test_url_failures"
for t in $TESTS; do
    run "$t"
done

echo "test_inputs_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
