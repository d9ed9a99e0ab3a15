#!/usr/bin/env bash
# shellcheck disable=SC2086 # option lists are split into words on purpose
# test_media_cli.sh: end-to-end tests of `cartoongan cartoonize` on animated GIFs and
# videos: output layout, frame counts, delays, loop counts, frame rates and durations
# (read back by build/tests/test_media probe), each GIF frame against the photo path on the
# same composited frame (PSNR >= 30 dB), the options (--gif-frame-frequency,
# --max-num-frames, --convert-gif-to-mp4, --ignore-gif, --dither), the progress bar, and
# that every kind of bad GIF or video fails alone, with one line, leaving nothing behind.
# Prints "ok NAME" / "FAIL NAME" per case and last "test_media_cli: P passed, F failed".
# The fixtures are tests/data/media/ (tools/make_test_media.c says what each holds).
# Run from anywhere: tests/test_media_cli.sh
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
    echo "test_media_cli: 0 passed, 1 failed"
    exit 1
fi
export CARTOONGAN_WEIGHTS=$W
VMEM_LIMIT_KB=${VMEM_LIMIT_KB-4000000} # as in test_cli.sh; empty for sanitizer builds
TIMEOUT=""
command -v timeout >/dev/null && TIMEOUT="timeout 300"

T=$(mktemp -d "${TMPDIR:-/tmp}/test_media_cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

passed=0 failed=0 checks_failed=0 rc=0

# ---- helpers (the shared ones are in tests/cli_lib.sh) ----
# shellcheck source=tests/cli_lib.sh
. "$ROOT/tests/cli_lib.sh"

expect_quiet_err() { [ ! -s "$T/err" ] || note_failure "unexpected stderr: $(head -c 300 "$T/err")"; }


expect_probe() { # FILE EXPECTED: the probe's one-line description
    local got
    got=$("$PROBE" probe "$1" 2>&1)
    [ "$got" = "$2" ] || note_failure "$1: probe says '$got', expected '$2'"
}


# ---- tests ----

test_help_and_usage() {
    cg cartoonize --help
    expect_rc 0
    local f
    for f in --ignore-gif --gif-frame-frequency --max-num-frames --convert-gif-to-mp4 --dither \
        "default: 100" "default: off" ".heic, .heif, .avif, .gif," ".mp4, .mov, .webm or .mkv"; do
        expect_out "$f"
    done
    for f in "--gif-frame-frequency 0" "--max-num-frames -1" "--max-num-frames x" "--dither=1" \
        "--ignore-gif=no" "--convert-gif-to-mp4=1"; do
        cg cartoonize $f "$MEDIA/still.gif"
        expect_rc 2
        expect_err "try 'cartoongan cartoonize --help'"
    done
}

# anim.gif, 64x48, 8 frames: every output has the frame count, delays and loop count; the
# MP4s last as long as browsers play the GIF (the delays 0 showing as 10: 1.07 s).
test_gif_animated() {
    cg cartoonize --convert-gif-to-mp4 --output-dir "$D/out" "$MEDIA/anim.gif"
    expect_rc 0
    expect_quiet_err
    expect_out "cartoonized 1 GIF (1 style)"
    expect_files "$D/out" "comparison/anim.gif
comparison/mp4/anim.mp4
shinkai/anim.gif
shinkai/mp4/anim.mp4"
    expect_probe "$D/out/shinkai/anim.gif" "gif 64x48 frames=8 loop=0 delays=10,20,5,7,0,30,15,10"
    expect_probe "$D/out/comparison/anim.gif" "gif 64x96 frames=8 loop=0 delays=10,20,5,7,0,30,15,10"
    expect_probe "$D/out/shinkai/mp4/anim.mp4" "video 64x48 frames=8 fps=800/107 duration=1.070 codec=h264 audio=none"
    expect_probe "$D/out/comparison/mp4/anim.mp4" "video 64x96 frames=8 fps=800/107 duration=1.070 codec=h264 audio=none"
}

# Each GIF frame against the photo path run on the same composited frame (saved as PNG):
# the only difference is the GIF's 256-colour palette.
test_gif_psnr() {
    mkdir -p "$D/frames"
    "$PROBE" frames "$MEDIA/anim.gif" "$D/frames" || note_failure "cannot extract the frames"
    cg cartoonize --skip-comparison --output-dir "$D/still" "$D/frames"
    expect_rc 0
    cg cartoonize --skip-comparison --output-dir "$D/out" "$MEDIA/anim.gif"
    expect_rc 0
    local line
    line=$("$PROBE" psnr "$D/out/shinkai/anim.gif" "$D/still/shinkai") || note_failure "PSNR below 30 dB: $line"
    echo "  anim.gif vs the photo path, $line"
    cg cartoonize --dither --skip-comparison --output-dir "$D/dither" "$MEDIA/anim.gif"
    expect_rc 0
    line=$("$PROBE" psnr "$D/dither/shinkai/anim.gif" "$D/still/shinkai") || note_failure "PSNR below 30 dB with --dither: $line"
    echo "  with --dither, $line"
}

# --gif-frame-frequency 3 keeps frames 0, 3 and 6, each shown for its group's playing time
# (10+20+5, 7+10+30, 15+10); --max-num-frames cuts after that, with a warning.
test_gif_frequency_and_limit() {
    cg cartoonize --gif-frame-frequency 3 --skip-comparison --output-dir "$D/f3" "$MEDIA/anim.gif"
    expect_rc 0
    expect_probe "$D/f3/shinkai/anim.gif" "gif 64x48 frames=3 loop=0 delays=35,47,25"
    cg cartoonize --max-num-frames 2 --skip-comparison --convert-gif-to-mp4 --output-dir "$D/m2" "$MEDIA/anim.gif"
    expect_rc 0
    expect_err "warning: $MEDIA/anim.gif: 8 frames; only the first 2 are cartoonized (--max-num-frames"
    expect_probe "$D/m2/shinkai/anim.gif" "gif 64x48 frames=2 loop=0 delays=10,20"
    expect_probe "$D/m2/shinkai/mp4/anim.mp4" "video 64x48 frames=2 fps=20/3 duration=0.300 codec=h264 audio=none"
    cg cartoonize --quiet --gif-frame-frequency=3 --max-num-frames=2 --skip-comparison --output-dir "$D/both" "$MEDIA/anim.gif"
    expect_rc 0
    expect_quiet_err
    expect_probe "$D/both/shinkai/anim.gif" "gif 64x48 frames=2 loop=0 delays=35,47"
    # thousands of frames: cut at the limit, read no further
    cg cartoonize --max-num-frames 3 --output-dir "$D/many" "$MEDIA/many.gif"
    expect_rc 0
    expect_err "many.gif: 2000 frames; only the first 3 are cartoonized"
    expect_probe "$D/many/shinkai/many.gif" "gif 2x2 frames=3 loop=0 delays=0,0,0"
}

# A still GIF is one frame in, one out (no loop block added); --max-height applies to
# frames as to photos (64x48 and 24x18 to height 12).
test_gif_still_and_size() {
    cg cartoonize --max-height 12 --output-dir "$D/out" "$MEDIA/still.gif" "$MEDIA/anim.gif"
    expect_rc 0
    expect_out "cartoonized 2 GIFs"
    expect_probe "$D/out/shinkai/still.gif" "gif 16x12 frames=1 loop=-1 delays=0"
    expect_probe "$D/out/comparison/still.gif" "gif 16x24 frames=1 loop=-1 delays=0"
    expect_probe "$D/out/shinkai/anim.gif" "gif 16x12 frames=8 loop=0 delays=10,20,5,7,0,30,15,10"
}

test_ignore_gif() {
    mkdir -p "$D/in"
    cp "$MEDIA/still.gif" "$D/in/a.gif"
    cp "$IMAGES/plain.png" "$D/in/b.png"
    cg cartoonize --ignore-gif --output-dir "$D/out" "$D/in"
    expect_rc 0
    expect_files "$D/out" "comparison/b.png
shinkai/b.png"
    expect_out "cartoonized 1 image (1 style)"
    expect_out "1 GIF ignored (--ignore-gif)"
    # nothing but GIFs: nothing to do, not an error
    cg cartoonize --ignore-gif --output-dir "$D/out2" "$D/in/a.gif"
    expect_rc 0
    expect_out "cartoonized 0 GIFs (1 style)"
    expect_out "1 GIF ignored"
    [ ! -e "$D/out2" ] || note_failure "--ignore-gif wrote $D/out2"
}

# Four containers and codecs, each in its own folder (all four are named clip.*, and a
# video's results are MP4s: clip.mp4). The MOV's PCM sound cannot go into an MP4 (a
# warning, and a silent cartoon); its odd sides 31x23 are cut to even. rotated.mp4 (32x24
# marked "turn 90 degrees") comes out upright, 24x32, like a phone's portrait video.
test_videos() {
    local d
    for d in mp4 webm mov mkv; do
        mkdir -p "$D/in/$d"
        cp "$MEDIA/clip.$d" "$D/in/$d/"
    done
    cp "$MEDIA/rotated.mp4" "$D/in/"
    cg cartoonize --output-dir "$D/out" "$D/in"
    expect_rc 0
    expect_out "cartoonized 5 videos (1 style)"
    expect_err "warning: $D/in/mov/clip.mov: its pcm_s16le audio cannot be copied into an MP4; the cartoon is silent"
    [ "$(wc -l <"$T/err")" -eq 1 ] || note_failure "stderr is not one line: $(cat "$T/err")"
    expect_files "$D/out" "comparison/mkv/clip.mp4
comparison/mov/clip.mp4
comparison/mp4/clip.mp4
comparison/rotated.mp4
comparison/webm/clip.mp4
shinkai/mkv/clip.mp4
shinkai/mov/clip.mp4
shinkai/mp4/clip.mp4
shinkai/rotated.mp4
shinkai/webm/clip.mp4"
    expect_probe "$D/out/shinkai/mp4/clip.mp4" "video 32x24 frames=12 fps=12/1 duration=1.000 codec=h264 audio=aac"
    expect_probe "$D/out/comparison/mp4/clip.mp4" "video 32x48 frames=12 fps=12/1 duration=1.000 codec=h264 audio=aac"
    expect_probe "$D/out/shinkai/webm/clip.mp4" "video 32x24 frames=8 fps=8/1 duration=1.000 codec=h264 audio=none"
    expect_probe "$D/out/shinkai/mov/clip.mp4" "video 30x22 frames=6 fps=6/1 duration=1.000 codec=h264 audio=none"
    expect_probe "$D/out/shinkai/mkv/clip.mp4" "video 32x24 frames=10 fps=25/1 duration=0.400 codec=h264 audio=none"
    expect_probe "$D/out/shinkai/rotated.mp4" "video 24x32 frames=12 fps=12/1 duration=1.000 codec=h264 audio=none"
    expect_probe "$D/out/comparison/rotated.mp4" "video 48x32 frames=12 fps=12/1 duration=1.000 codec=h264 audio=none"
}

test_video_limit_and_names() {
    cg cartoonize --max-num-frames 5 --skip-comparison --output-dir "$D/out" "$MEDIA/clip.mp4"
    expect_rc 0
    expect_err "warning: $MEDIA/clip.mp4: 12 frames; only the first 5 are cartoonized (--max-num-frames"
    expect_probe "$D/out/shinkai/clip.mp4" "video 32x24 frames=5 fps=12/1 duration=0.417 codec=h264 audio=aac"
    # clip.mov and clip.mp4 would both write clip.mp4
    mkdir -p "$D/in"
    cp "$MEDIA/clip.mp4" "$MEDIA/clip.mov" "$D/in/"
    cg cartoonize --max-num-frames 2 --skip-comparison --output-dir "$D/out2" "$D/in"
    expect_rc 1
    expect_err "$D/in/clip.mp4: has the same output name (clip.mp4) as $D/in/clip.mov"
    expect_files "$D/out2" "shinkai/clip.mp4"
}

# Each bad input alone: exit 1, one line naming the file and the reason, no output and no
# temp file.
test_bad_media() {
    local c f why noun
    for c in "truncated.gif|truncated GIF" "empty.gif|GIF has no frames" "notgif.gif|not a GIF file" \
        "huge.gif|over the limit" "audio_only.mp4|no video track" "corrupt.mp4|corrupt video stream" \
        "unsupported.mp4|unsupported video codec" "truncated.mp4|truncated video" \
        "missing.mp4|no such file" "missing.gif|no such file"; do
        f=${c%%|*} why=${c#*|}
        rm -rf "$D/out"
        # a decoder that trusted huge.gif's header would need gigabytes
        (if [ -n "$VMEM_LIMIT_KB" ]; then ulimit -v "$VMEM_LIMIT_KB" 2>/dev/null; fi
         cg cartoonize --threads 2 --convert-gif-to-mp4 --output-dir "$D/out" "$MEDIA/$f"; exit $rc)
        rc=$?
        expect_rc 1
        expect_err "$MEDIA/$f: "
        expect_err "$why"
        [ "$(wc -l <"$T/err")" -eq 1 ] || note_failure "$f: error is not one line: $(cat "$T/err")"
        expect_files "$D/out" ""
        # the summary calls what failed by its kind (a missing file has none yet)
        case $f in missing.*) noun=inputs ;; *.gif) noun=GIFs ;; *) noun=videos ;; esac
        expect_out "cartoonized 0 $noun (1 style) in "
        expect_out "; 1 failed"
    done
    # --max-pixels reaches GIF screens and video frames too (64x48 = 3072, 32x24 = 768)
    cg cartoonize --max-pixels 3000 --output-dir "$D/out" "$MEDIA/anim.gif"
    expect_rc 1
    expect_err "over the limit of 3000 pixels"
    cg cartoonize --max-pixels 700 --output-dir "$D/out" "$MEDIA/clip.mp4"
    expect_rc 1
    expect_err "over the limit of 700 pixels"
    expect_files "$D/out" ""
}

# Good and bad files in one folder: the bad ones fail alone and the batch goes on.
test_media_batch() {
    mkdir -p "$D/in"
    cp "$MEDIA/anim.gif" "$MEDIA/corrupt.mp4" "$MEDIA/clip.mkv" "$MEDIA/truncated.gif" "$D/in/"
    cp "$IMAGES/plain.png" "$D/in/"
    # (corrupt.mp4 goes wrong at its third frame: a limit of 2 would never see it)
    cg cartoonize --max-num-frames 4 --output-dir "$D/out" "$D/in"
    expect_rc 1
    expect_out "cartoonized 1 image, 1 GIF, 1 video (1 style)"
    expect_out "2 failed"
    expect_out "failed: $D/in/corrupt.mp4: corrupt video stream"
    expect_out "failed: $D/in/truncated.gif: truncated GIF"
    expect_files "$D/out" "comparison/anim.gif
comparison/clip.mp4
comparison/plain.png
shinkai/anim.gif
shinkai/clip.mp4
shinkai/plain.png"
    # the finished ones are skipped the next time; only a newly asked-for MP4 is made
    find "$D/out" -type f -exec touch -d "2001-01-01 00:00:00" {} +
    rm "$D/in/corrupt.mp4" "$D/in/truncated.gif"
    cg cartoonize --max-num-frames 4 --output-dir "$D/out" "$D/in"
    expect_rc 0
    expect_out "cartoonized 0 inputs (1 style)"
    expect_out "3 skipped (already done)"
    cg cartoonize --max-num-frames 4 --convert-gif-to-mp4 --output-dir "$D/out" "$D/in"
    expect_rc 0
    expect_out "cartoonized 1 GIF (1 style)"
    [ -s "$D/out/shinkai/mp4/anim.mp4" ] && [ -s "$D/out/comparison/mp4/anim.mp4" ] ||
        note_failure "the MP4s were not made"
    [ -z "$(find "$D/out" -type f -name '*.gif' -newermt 2002-01-01)" ] || note_failure "finished GIFs were rewritten"
    [ -z "$(find "$D/out" -name '.*')" ] || note_failure "temporary files left: $(find "$D/out" -name '.*')"
}

# On a terminal a bar counts frames for each GIF or video; --quiet silences it.
test_progress_bar() {
    if ! command -v script >/dev/null; then return; fi
    script -qec "$BIN cartoonize --skip-comparison --output-dir $D/out $MEDIA/anim.gif" /dev/null >"$T/tty" 2>&1
    grep -q "8/8 frames" "$T/tty" || note_failure "no frame bar: $(tr '\r' '\n' <"$T/tty" | tail -3)"
    grep -q " fps " "$T/tty" || note_failure "no frame rate in the bar"
    script -qec "$BIN cartoonize --quiet --overwrite --skip-comparison --output-dir $D/out $MEDIA/anim.gif" /dev/null >"$T/tty" 2>&1
    ! grep -q "frames" "$T/tty" || note_failure "a bar with --quiet"
}

for t in test_help_and_usage test_gif_animated test_gif_psnr test_gif_frequency_and_limit \
    test_gif_still_and_size test_ignore_gif test_videos test_video_limit_and_names \
    test_bad_media test_media_batch test_progress_bar; do
    run "$t"
done

echo "test_media_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
