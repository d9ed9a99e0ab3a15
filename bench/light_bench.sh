#!/usr/bin/env bash
# light_bench.sh (make bench, after bench.sh): the light generator (light_shinkai) against
# ONNX Runtime running the same network, in the same run, on 2 threads:
#   1. the engine alone (`cartoongan bench --style light_shinkai`) and ONNX Runtime
#      (bench/ort_bench.mjs on build/onnx/light_shinkai.onnx, exported from the PyTorch
#      port by tools/export_onnx_light.py) at 256x256, 640x360, 512x512 and 1280x720, one
#      size after the other so both see the same machine;
#   2. the whole `cartoongan cartoonize` of a 640x360 video (decode, stylize, encode) in
#      frames per second.
# Times are medians of RUNS (default 3) runs after a warm-up. Prints one markdown table.
# Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
{
bin=${CARTOONGAN_BIN:-build/cartoongan}
runs=${RUNS:-3}
onnx=build/onnx/light_shinkai.onnx
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
have_ort=0
command -v node >/dev/null && [ -d node_modules/onnxruntime-node ] && [ -f "$onnx" ] && have_ort=1
[ $have_ort = 1 ] || echo "light_bench: no ONNX Runtime or no $onnx (npm install --ignore-scripts; /usr/bin/python3 tools/export_onnx_light.py); engine only"
echo "| size | engine (s) | ONNX Runtime (s) | ratio |"
echo "| --- | --- | --- | --- |"
for size in 256x256 640x360 512x512 1280x720; do
    ours=$("$bin" bench --style light_shinkai --sizes "$size" --threads 2 --runs "$runs" | awk -v s="$size" '$1 == s { print $3 }')
    ort=-
    if [ $have_ort = 1 ]; then
        ort=$(node bench/ort_bench.mjs --model "$onnx" --size "$size" --runs "$runs" --threads 2 |
            sed -n 's/.*median \([0-9.]*\) s.*/\1/p')
    fi
    ratio=-
    [ "$ort" != - ] && ratio=$(awk -v a="$ort" -v b="$ours" 'BEGIN { printf "%.1fx", a / b }')
    echo "| $size | $ours | $ort | $ratio |"
done
# a 10 s 640x360 clip at 25 fps panning across a photo (tools/make_test_media.c's video
# mode), through the whole command
if make -s build/tools/make_test_media >/dev/null 2>&1 &&
    build/tools/make_test_media video "$tmp/clip.mp4" 250 640 360 25 input_images/temple.jpg >/dev/null 2>&1; then
    t0=$(date +%s.%N)
    "$bin" cartoonize --quiet --styles light_shinkai --skip-comparison --keep-original-size \
        --max-num-frames 0 --threads 2 --output-dir "$tmp/out" "$tmp/clip.mp4"
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "cartoonize, 640x360 video, 250 frames: %.1f s, %.1f frames per second\n", b - a, 250 / (b - a) }'
else
    echo "light_bench: could not make the 640x360 test clip (build/tools/make_test_media video)"
fi
exit 0
}
