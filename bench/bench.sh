#!/usr/bin/env bash
# bench.sh (make bench): times cartoongan against PyTorch and ONNX Runtime on this machine.
#   0. the machine's FMA peak (bench/fma_peak.c, all cores, AVX2 and AVX-512 if present);
#   1. the engine alone (`cartoongan bench`): 1 thread at 256x256 and 512x512, and 2
#      threads at 256x256, 512x512 and 1920x1200, each in its own process (peak RSS), once
#      per compute kernel the CPU has (CARTOONGAN_KERNEL=amx, avx512, avx2: AMX's bf16x3
#      products where the CPU has them, and the fp32 ones every CPU without AMX runs);
#   2. the whole `cartoongan cartoonize --keep-original-size --threads 2` command, as a user
#      runs it on one photo (decode, weights, network, the output and the comparison
#      encoded), at the three sizes with each kernel: wall and system time, peak resident
#      memory, and its ratio to the engine's time (the issue's bar: 1.5x at 512x512);
#   3. PyTorch (Debian's python3-torch, tools/reference.py) at the three sizes, 2 threads;
#   4. ONNX Runtime (npm onnxruntime-node, bench/ort_bench.mjs on build/onnx/<style>.onnx
#      from tools/export_onnx.py) at the three sizes, 2 threads;
#   5. fidelity: PSNR of PyTorch's and ONNX Runtime's 8-bit outputs against ours;
#   6. one summary table (markdown) of it all, one row per kernel and size.
# Inputs: 256x256 and 512x512 centre crops of a shared nature photo, and a 1920x1200 one
# whole, written as PNG (and as raw float32 for ONNX Runtime) with Python's PIL so that
# every tool reads the same pixels. Times are medians of RUNS (default 3) timed runs after
# a warm-up; RUNS_BIG (default 2) at 1920x1200, where PyTorch takes over a minute a run.
# STYLE picks the weights (default hayao); SIZES (e.g. "256x256 512x512") narrows the sizes:
# square ones are crops of the first photo, others the second photo resized. Not part of
# `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
{ # the whole script is one block, read before it runs: editing it mid-run is safe
bin=${CARTOONGAN_BIN:-build/cartoongan}
style=${STYLE:-hayao}
runs=${RUNS:-3}
runs_big=${RUNS_BIG:-2}
shared=../shared
photo_src=$shared/data/photos/debian_mate_nature/Aqua.jpg
big_src=$shared/data/photos/debian_mate_nature/Blinds.jpg
read -r -a sizes <<< "${SIZES:-256x256 512x512 1920x1200}"
onnx=build/onnx/$style.onnx
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$bin" "$tmp/cartoongan" && bin=$tmp/cartoongan  # a rebuild during the run cannot touch it
runs_for() { [ "$1" = 1920x1200 ] && echo "$runs_big" || echo "$runs"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# keyed by size, or by "kernel size" for ours
declare -A ours ours_gf ours_rss cmd_s cmd_sys cmd_rss torch_s torch_rss ort_s ort_rss psnr_torch psnr_ort

have_torch=0 have_pil=0 have_ort=0
/usr/bin/python3 -c 'import torch, PIL' 2>/dev/null && have_torch=1
/usr/bin/python3 -c 'import numpy, PIL' 2>/dev/null && have_pil=1
command -v node >/dev/null && [ -d node_modules/onnxruntime-node ] && [ -f "$onnx" ] && have_ort=1
if [ $have_pil = 1 ]; then
    # photo<W>x<H>.png (RGB) and photo<W>x<H>.f32 (BGR in [-1,1], float32 [1,3,H,W]).
    /usr/bin/python3 - "$photo_src" "$big_src" "$tmp" "${sizes[@]}" <<'PY'
import sys
import numpy as np
from PIL import Image
src, big, out = sys.argv[1:4]
for size in sys.argv[4:]:
    w, h = map(int, size.split("x"))
    if w == h:
        im = Image.open(src).convert("RGB")
        W, H = im.size; c = min(W, H)
        im = im.crop(((W - c) // 2, (H - c) // 2, (W - c) // 2 + c, (H - c) // 2 + c)).resize((w, h), Image.LANCZOS)
    else:
        im = Image.open(big).convert("RGB")
        if im.size != (w, h):
            im = im.resize((w, h), Image.LANCZOS)
    im.save("%s/photo%s.png" % (out, size))
    x = np.asarray(im).astype(np.float32)[:, :, ::-1].transpose(2, 0, 1) / 255.0 * 2.0 - 1.0
    np.ascontiguousarray(x, dtype=np.float32).tofile("%s/photo%s.f32" % (out, size))
PY
fi
input_for() { if [ -f "$tmp/photo$1.png" ]; then echo "--input $tmp/photo$1.png"; fi; }

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(date -u +%F); load average$(uptime | sed 's/.*load average//')"
if ! [ build/fma_peak -nt bench/fma_peak.c ]; then  # make bench builds it; bench.sh alone too
    ${CC:-cc} -std=c11 -O2 -pthread -o build/fma_peak bench/fma_peak.c
fi
peak_avx2='' peak_avx512='' wall_avx2=''
while read -r isa _ gflops; do
    case $isa in avx2) peak_avx2=$gflops ;; avx512) peak_avx512=$gflops ;; avx2_wall) wall_avx2=$gflops ;; esac
done < <(build/fma_peak)
echo "   measured FMA peak, $(nproc) threads: AVX2 ${peak_avx2} GFLOP/s${peak_avx512:+, AVX-512 $peak_avx512 GFLOP/s}" \
     "(bench/fma_peak.c, per thread CPU time; by wall-clock time AVX2 reached $wall_avx2 GFLOP/s:" \
     "far lower means other processes share the cores)"

# The whole command on one photo of size $2 with kernel $1, run right after the engine at
# that size and kernel so that both see the machine at the same speed: its medians go to
# cmd_s, cmd_sys, cmd_rss, a line to stdout; the default kernel's output to ours<size>.png.
whole_command() {
    local k=$1 sz=$2 rss=0 secs sys kb
    rm -f "$tmp/secs" "$tmp/sys"
    for _ in $(seq "$(runs_for "$sz")"); do
        rm -rf "$tmp/out"
        CARTOONGAN_KERNEL=$k /usr/bin/time -f '%e %S %M' -o "$tmp/time" "$bin" cartoonize --quiet \
            --styles "$style" --keep-original-size --threads 2 --output-dir "$tmp/out" "$tmp/photo$sz.png"
        read -r secs sys kb < "$tmp/time"
        echo "$secs" >> "$tmp/secs"
        echo "$sys" >> "$tmp/sys"
        [ "$kb" -gt "$rss" ] && rss=$kb
    done
    [ "$k" = "$kernel" ] && cp "$tmp/out/$style/photo$sz.png" "$tmp/ours$sz.png"
    cmd_s[$k $sz]=$(median < "$tmp/secs")
    cmd_sys[$k $sz]=$(median < "$tmp/sys")
    cmd_rss[$k $sz]=$((rss / 1024))
    awk -v k="$k" -v sz="$sz" -v c="${cmd_s[$k $sz]}" -v y="${cmd_sys[$k $sz]}" -v m="${cmd_rss[$k $sz]}" \
        -v e="${ours[$k $sz]:-}" -v all="$(tr '\n' ' ' < "$tmp/secs")" 'BEGIN {
        printf "   %-6s %-9s %.2f s wall (runs: %s), %.2f s system, peak RSS %d MB; engine %s, whole command / engine %s\n",
            k, sz, c, all, y, m, e == "" ? "-" : sprintf("%.2f s", e), e == "" ? "-" : sprintf("%.2fx", c / e)
    }'
}

# The kernels this CPU has, best first: `cartoongan bench` names the one it runs, which
# is the one CARTOONGAN_KERNEL asks for only when the CPU has it.
kernels=()
for k in amx avx512 avx2; do
    got=$(CARTOONGAN_KERNEL=$k "$bin" bench --style "$style" --sizes 8x8 --threads 1 --runs 1 | sed -n 's/^kernel: //p')
    [ "$got" = "$k" ] && kernels+=("$k")
done
[ ${#kernels[@]} -gt 0 ] || kernels=("$("$bin" bench --style "$style" --sizes 8x8 --threads 1 --runs 1 | sed -n 's/^kernel: //p')")
kernel=${kernels[0]} # the default: what a user gets

echo
echo "== engine only (cartoongan bench, style $style, median of $runs runs after a warm-up; $runs_big at 1920x1200)"
echo "   kernels: ${kernels[*]} (the first is the default)"
# shellcheck disable=SC2046
$bin bench --style "$style" --sizes 256x256,512x512 --threads 1 --runs "$runs" $(input_for 512x512) | grep -v '^peak'
for k in "${kernels[@]}"; do
    echo "   CARTOONGAN_KERNEL=$k, 2 threads:"
    for sz in "${sizes[@]}"; do
        # shellcheck disable=SC2046
        CARTOONGAN_KERNEL=$k /usr/bin/time -f '%M' -o "$tmp/time" "$bin" bench --style "$style" --sizes "$sz" \
            --threads 2 --runs "$(runs_for "$sz")" $(input_for "$sz") > "$tmp/ours.txt"
        grep "^$sz " "$tmp/ours.txt" | sed 's/^/   /'
        read -r _ _ "ours[$k $sz]" _ "ours_gf[$k $sz]" _ < <(grep "^$sz " "$tmp/ours.txt")
        ours_rss[$k $sz]=$(( $(cat "$tmp/time") / 1024 ))
        [ $have_pil = 1 ] && whole_command "$k" "$sz" >> "$tmp/cmd.txt"
    done
done

if [ $have_pil = 1 ]; then
    echo
    echo "== whole command: cartoongan cartoonize --keep-original-size --threads 2 on one PNG photo, one style," \
         "with its comparison (median of $runs runs; $runs_big at 1920x1200; each right after the engine's runs" \
         "at that size and kernel above)"
    cat "$tmp/cmd.txt"
fi

if [ $have_torch = 1 ]; then
    echo
    echo "== PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') (tools/reference.py, float32, 2 threads)"
    for sz in "${sizes[@]}"; do
        /usr/bin/time -f '%M' -o "$tmp/time" /usr/bin/python3 tools/reference.py --weights "$shared/weights/cartoongan/$style" \
            --threads 2 --time --runs "$(runs_for "$sz")" "$tmp/photo$sz.png" "$tmp/torch$sz.png" > "$tmp/torch.txt"
        sed 's/^/   /' "$tmp/torch.txt"
        torch_s[$sz]=$(sed -n 's/.*median \([0-9.]*\) s.*/\1/p' "$tmp/torch.txt")
        torch_rss[$sz]=$(( $(cat "$tmp/time") / 1024 ))
        echo "   peak RSS (whole python process) ${torch_rss[$sz]} MB"
    done
else
    echo
    echo "(PyTorch not found: apt-get install python3-torch python3-pil to compare)"
fi

if [ $have_ort = 1 ] && [ $have_pil = 1 ]; then
    echo
    echo "== ONNX Runtime (bench/ort_bench.mjs, $onnx, float32, intra-op threads 2)"
    for sz in "${sizes[@]}"; do
        /usr/bin/time -f '%M' -o "$tmp/time" node bench/ort_bench.mjs --model "$onnx" --size "$sz" --threads 2 \
            --runs "$(runs_for "$sz")" --input "$tmp/photo$sz.f32" --output "$tmp/ort$sz.f32" > "$tmp/ort.txt"
        sed 's/^/   /' "$tmp/ort.txt"
        ort_s[$sz]=$(sed -n 's/.*median \([0-9.]*\) s.*/\1/p' "$tmp/ort.txt")
        ort_rss[$sz]=$(( $(cat "$tmp/time") / 1024 ))
    done
else
    echo
    echo "(ONNX Runtime left out: it needs node, \`npm install --ignore-scripts\` and $onnx from" \
         "\`/usr/bin/python3 tools/export_onnx.py --style $style\`; make bench does both)"
fi

if [ $have_pil = 1 ]; then
    echo
    echo "== fidelity: PSNR of the 8-bit RGB outputs against ours (cartoongan cartoonize)"
    while read -r sz a b; do
        psnr_torch[$sz]=$a psnr_ort[$sz]=$b
        echo "   $sz: PyTorch $a dB, ONNX Runtime $b dB"
    done < <(/usr/bin/python3 - "$tmp" "${sizes[@]}" <<'PY'
import os, sys
import numpy as np
from PIL import Image
tmp = sys.argv[1]
def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return "inf" if mse == 0 else "%.1f" % (10 * np.log10(255.0 ** 2 / mse))
for size in sys.argv[2:]:
    w, h = map(int, size.split("x"))
    ours = np.asarray(Image.open("%s/ours%s.png" % (tmp, size)).convert("RGB"))
    t = "%s/torch%s.png" % (tmp, size)
    pt = psnr(np.asarray(Image.open(t).convert("RGB")), ours) if os.path.exists(t) else "-"
    o = "%s/ort%s.f32" % (tmp, size)
    po = "-"
    if os.path.exists(o):  # tanh output, BGR [1,3,h',w'] -> round(255*(y*0.5+0.5)), RGB, crop
        y = np.fromfile(o, np.float32).reshape(3, -1, 4 * -(-w // 4))
        v = np.clip(np.rint(255.0 * (y * 0.5 + 0.5)), 0, 255).astype(np.uint8)
        po = psnr(v[::-1].transpose(1, 2, 0)[:h, :w], ours)
    print(size, pt, po)
PY
)
fi

echo
echo "== summary: style $style, 2 threads, median seconds ($runs runs; $runs_big at 1920x1200)"
echo
echo "| kernel | size | ours (engine) | PyTorch | ONNX Runtime | PyTorch / ours | ORT / ours | ours, whole command: wall / system | whole command / engine | peak RSS MB: ours engine / ours whole command / PyTorch / ORT | ours GFLOP/s | % of AVX2 FMA peak | % of AVX-512 FMA peak | PSNR vs ours: PyTorch / ORT |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for k in "${kernels[@]}"; do
    for sz in "${sizes[@]}"; do
        awk -v k="$k" -v sz="$sz" -v o="${ours[$k $sz]:-}" -v t="${torch_s[$sz]:-}" -v r="${ort_s[$sz]:-}" \
            -v gf="${ours_gf[$k $sz]:-}" -v c="${cmd_s[$k $sz]:-}" -v y="${cmd_sys[$k $sz]:-}" \
            -v p2="$peak_avx2" -v p5="$peak_avx512" \
            -v mem="${ours_rss[$k $sz]:--} / ${cmd_rss[$k $sz]:--} / ${torch_rss[$sz]:--} / ${ort_rss[$sz]:--}" \
            -v fid="$([ "$k" = "$kernel" ] && echo "${psnr_torch[$sz]:--} / ${psnr_ort[$sz]:--} dB" || echo -)" 'BEGIN {
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", k, sz,
                o == "" ? "-" : sprintf("%.2f s", o), t == "" ? "-" : sprintf("%.2f s", t), r == "" ? "-" : sprintf("%.2f s", r),
                (t == "" || o == "") ? "-" : sprintf("%.2fx", t / o), (r == "" || o == "") ? "-" : sprintf("%.2fx", r / o),
                c == "" ? "-" : sprintf("%.2f s / %.2f s", c, y), (c == "" || o == "") ? "-" : sprintf("%.2fx", c / o),
                mem, gf == "" ? "-" : gf, (p2 == "" || gf == "") ? "-" : sprintf("%.0f %%", 100 * gf / p2),
                (p5 == "" || gf == "") ? "-" : sprintf("%.0f %%", 100 * gf / p5), fid
        }'
    done
done
echo
echo "GFLOP/s counts 2 flops per multiply-add of direct convolution (a fast algorithm such as Winograd does fewer," \
     "so the share of the peak can pass 100 %); the FMA peaks are bench/fma_peak.c's, all $(nproc) cores." \
     "RSS: whole processes (python and node included), from /usr/bin/time; ours engine is \`cartoongan bench\`." \
     "\`amx\` runs the products as bf16x3 on AMX tiles (src/nn/amx.h), the others in fp32; PSNR is the default kernel's" \
     "output (\`$kernel\`). The whole command of a row ran right after its engine runs, so that both saw the" \
     "machine at the same speed (virtual machines' speed can change from minute to minute)."
exit
}
