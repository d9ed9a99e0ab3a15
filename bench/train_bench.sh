#!/usr/bin/env bash
# train_bench.sh: one CartoonGAN training step, the C engine against PyTorch on the same
# machine in the same run (make bench-train): a GAN step and an init step at batch 4,
# 256x256 (BATCH, SIZE), 2 threads (THREADS), G from hayao, the median of STEPS timed
# steps after a warm-up, and each process's peak RSS. Prints both and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CARTOONGAN_TRAIN_BENCH:-build/train_bench}
BATCH=${BATCH:-4} SIZE=${SIZE:-256} THREADS=${THREADS:-2} STEPS=${STEPS:-3}
VGG=build/bench/vgg_fixture.safetensors
mkdir -p build/bench
echo "training step, batch $BATCH at ${SIZE}x${SIZE}, $THREADS threads, median of $STEPS steps"
ours=$("$BIN" --g weights/hayao.safetensors --vgg "$VGG" --batch "$BATCH" --size "$SIZE" --threads "$THREADS" --steps "$STEPS")
echo "$ours"
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    echo "train_bench: no PyTorch (Debian's python3-torch) here: the C engine alone"
    exit 0
fi
torch=$(/usr/bin/python3 bench/train_step_torch.py --batch "$BATCH" --size "$SIZE" --threads "$THREADS" --steps "$STEPS" 2>/dev/null)
echo "$torch"
val() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
for k in gan_step_s init_step_s; do
    awk -v a="$(val "$ours" $k)" -v b="$(val "$torch" $k)" -v k="$k" \
        'BEGIN { printf "%-12s ours %.2f s  PyTorch %.2f s  PyTorch / ours %.2fx\n", k, a, b, b / a }'
done
awk -v a="$(val "$ours" peak_rss_mb)" -v b="$(val "$torch" peak_rss_mb)" \
    'BEGIN { printf "peak RSS     ours %.0f MB  PyTorch %.0f MB\n", a, b }'
