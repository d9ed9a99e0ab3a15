#!/usr/bin/env bash
# bench.sh (make bench): times cartoongan against the PyTorch reference on this machine.
#   1. the engine alone (`cartoongan bench`) at 256x256 and 512x512, 1 and 2 threads;
#   2. the whole `cartoongan cartoonize` command on a 512x512 photo (decode, network,
#      encode), with its peak resident memory;
#   3. PyTorch (Debian's python3-torch, tools/reference.py) on the same photo, 2 threads.
# The photo is a 512x512 centre crop of a shared nature photo. Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/cartoongan
style=${STYLE:-hayao}
runs=${RUNS:-3}
shared=../shared
photo_src=$shared/data/photos/debian_mate_nature/Aqua.jpg
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

have_torch=0
/usr/bin/python3 -c 'import torch, PIL' 2>/dev/null && have_torch=1
for s in 256 512; do
    if [ $have_torch = 1 ]; then
        /usr/bin/python3 - "$photo_src" "$tmp/photo$s.png" "$s" <<'PY'
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB"); s = int(sys.argv[3])
w, h = im.size; c = min(w, h)
im.crop(((w - c) // 2, (h - c) // 2, (w - c) // 2 + c, (h - c) // 2 + c)).resize((s, s), Image.LANCZOS).save(sys.argv[2])
PY
    fi
done

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(date -u +%F)"
echo
echo "== engine only (cartoongan bench, style $style, median of $runs runs after a warm-up)"
input=()
[ -f "$tmp/photo512.png" ] && input=(--input "$tmp/photo512.png")
for t in 1 2; do
    $bin bench --style "$style" --sizes 256x256,512x512 --threads $t --runs "$runs" "${input[@]}" | grep -v '^peak'
done

if [ -f "$tmp/photo512.png" ]; then
    echo
    echo "== whole command: cartoongan cartoonize on a 512x512 PNG, 2 threads, one style"
    best=
    for _ in $(seq "$runs"); do
        rm -rf "$tmp/out"
        /usr/bin/time -f '%e %M' -o "$tmp/time" $bin cartoonize --quiet --styles "$style" --keep-original-size \
            --skip-comparison --threads 2 --output-dir "$tmp/out" "$tmp/photo512.png"
        read -r secs kb < "$tmp/time"
        echo "   $secs s wall, peak RSS $((kb / 1024)) MB"
    done
fi

if [ $have_torch = 1 ]; then
    echo
    echo "== PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') (tools/reference.py, float32, 2 threads)"
    for s in 256 512; do
        /usr/bin/time -f '%M' -o "$tmp/time" /usr/bin/python3 tools/reference.py --weights "$shared/weights/cartoongan/$style" \
            --threads 2 --time --runs "$runs" "$tmp/photo$s.png" "$tmp/ref$s.png" | sed 's/^/   /'
        echo "   peak RSS (whole python process) $(( $(cat "$tmp/time") / 1024 )) MB"
    done
else
    echo
    echo "(PyTorch not found: apt-get install python3-torch python3-pil to compare)"
fi
