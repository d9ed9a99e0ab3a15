#!/usr/bin/env bash
# dist_bench.sh: several processes on Open MPI against one (make bench-dist; issue 15),
# on this machine: `mpirun -np 2` processes of 1 thread against 1 process of 2 threads,
#  - training: GAN steps at a global batch of 4, 256x256 (2 x batch 2 against 1 x batch
#    4), the stand-in VGG19 (same shapes, same work), lsgan, batch norm: each step's time
#    from the rate logged for it, the median of a run's steps (see train() below), and the
#    all-reduce's share;
#  - cartoonize: 20 photos (the shared debian_mate_nature and original_test_set ones, 300
#    high as by default), hayao, wall time of the whole command, --overwrite.
# Each measurement REPEAT times (default 3), in turns, so that other work on the machine
# falls on both alike; prints every time and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${CARTOONGAN_BIN:-$ROOT/build/cartoongan}
FIXTURE_FILES=$(dirname "$BIN")/tools/train_fixture_files
EVENTS=$(dirname "$BIN")/tests/test_events # reads the TensorBoard files back
SHARED=${SHARED:-$ROOT/../shared/data}
REPEAT=${REPEAT:-3} STEPS=${STEPS:-8}
export CARTOONGAN_WEIGHTS=${CARTOONGAN_WEIGHTS:-$ROOT/weights}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --oversubscribe --bind-to none -np 2)
"$BIN" --version | grep -q "built with MPI" || { echo "dist_bench: $BIN was built without MPI"; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/dist_bench.XXXXXX")
trap 'rm -rf "$T"' EXIT
"$FIXTURE_FILES" "$T/vgg.safetensors"
# 60 photos and cartoons (the 10 of the sample sets, under 6 names each): one epoch is 15
# steps of 4, so no epoch ends (no validation, no checkpoint) within the timed steps
mkdir -p "$T/data/trainA" "$T/data/trainB"
for k in 0 1 2 3 4 5; do
    for i in 0 1 2 3 4 5 6 7 8 9; do
        cp "$SHARED/photos/small_train_set/$i.jpg" "$T/data/trainA/$k$i.jpg"
        cp "$SHARED/cartoon/anime/$i.jpg" "$T/data/trainB/$k$i.jpg"
    done
done
"$BIN" smooth --path "$T/data" --quiet
mkdir -p "$T/photos"
cp "$SHARED"/photos/debian_mate_nature/*.jpg "$T/photos/"
ls "$SHARED"/photos/original_test_set/*.jpg | head -n $((20 - $(ls "$T/photos" | wc -l))) | xargs -I{} cp {} "$T/photos/"
echo "cartoonize: $(ls "$T/photos" | wc -l) photos; $(uptime | sed 's/.*load/load/')"

now() { date +%s.%N; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# train MODE: one run of STEPS steps reporting every step; prints "median_step_s
# allreduce_share": a step's time is the global batch over the images_per_second rank 0
# logs for it (the time from one report to the next), the median of steps 2..STEPS (the
# first one starts the loaders and logs the sample images); the all-reduce's share is
# rank 0's time in the sums (its wait for the other process included) over all steps'.
train() {
    local mode=$1 out f
    local args=(train --dataset "$T/data" --vgg "$T/vgg.safetensors" --input-size 256 --init-epochs 0 --epochs 1
        --report-every 1 --save-every 1000000 --max-steps "$STEPS" --log-dir "$T/r/runs"
        --checkpoint-dir "$T/r/ckpt" --result-dir "$T/r/result")
    rm -rf "$T/r"
    if [ "$mode" = mpi ]; then
        out=$("${MPIRUN[@]}" "$BIN" "${args[@]}" --batch-size 2 --threads 1 2>/dev/null)
    else
        out=$("$BIN" "${args[@]}" --batch-size 4 --threads 2 2>/dev/null)
    fi
    local ar
    ar=$(echo "$out" | sed -n 's/.*all-reduce \([0-9.]*\) s.*/\1/p')
    for f in "$T"/r/runs/gan/events.out.tfevents.*; do "$EVENTS" dump "$f"; done |
        awk '$1 == "scalar" && $2 == "images_per_second" { print $3, 4 / $4 }' | sort -n >"$T/steps"
    echo "$(awk 'NR > 1 { print $2 }' "$T/steps" | median) $(awk -v ar="${ar:-0}" '{ s += $2 } END { printf "%.4f", ar / s }' "$T/steps")"
}

step_one=() step_mpi=() share=()
for r in $(seq 1 "$REPEAT"); do
    for mode in one mpi; do
        read -r s sh <<<"$(train $mode)"
        if [ $mode = one ]; then
            step_one+=("$s")
            echo "train, 1 process x 2 threads, batch 4: median step $s s ($(awk '{ printf "%.2f ", $2 }' "$T/steps")s)"
        else
            step_mpi+=("$s") share+=("$sh")
            echo "train, 2 processes x 1 thread, batch 2 each: median step $s s ($(awk '{ printf "%.2f ", $2 }' "$T/steps")s); all-reduce $sh of the steps"
        fi
    done
done

cz_one=() cz_mpi=()
for r in $(seq 1 "$REPEAT"); do
    for mode in one mpi; do
        t0=$(now)
        if [ $mode = one ]; then
            "$BIN" cartoonize --styles hayao --threads 2 --overwrite --skip-comparison --quiet --output-dir "$T/o1" "$T/photos"
        else
            "${MPIRUN[@]}" "$BIN" cartoonize --styles hayao --overwrite --skip-comparison --quiet --output-dir "$T/o2" "$T/photos"
        fi
        t1=$(now)
        s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
        if [ $mode = one ]; then cz_one+=("$s"); else cz_mpi+=("$s"); fi
        echo "cartoonize 20 photos, $([ $mode = one ] && echo "1 process x 2 threads" || echo "2 processes x 1 thread"): $s s"
    done
done
diff -r -q "$T/o1" "$T/o2" >/dev/null && echo "cartoonize: both wrote the same files, byte for byte"

echo "at the end: $(uptime | sed 's/.*load/load/')"
echo "medians of $REPEAT:"
echo "  training step, global batch 4 at 256x256: 1 process x 2 threads $(printf '%s\n' "${step_one[@]}" | median) s," \
    "2 processes x 1 thread $(printf '%s\n' "${step_mpi[@]}" | median) s, all-reduce $(printf '%s\n' "${share[@]}" | median) of the step"
echo "  cartoonize 20 photos: 1 process x 2 threads $(printf '%s\n' "${cz_one[@]}" | median) s," \
    "2 processes x 1 thread $(printf '%s\n' "${cz_mpi[@]}" | median) s"
