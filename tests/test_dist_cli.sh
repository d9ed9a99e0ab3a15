#!/usr/bin/env bash
# test_dist_cli.sh: `mpirun -np K cartoongan train|cartoonize` (issue 15) on Open MPI, at
# tiny sizes (the dataset of test_train_cli.sh, 32x32, the stand-in VGG19):
# - 2 processes of batch 1 take the same GAN step as 1 process of batch 2 from the same
#   checkpoint (batch norm and instance norm in D), within stated tolerances, while 1
#   process of batch 1 does not (the control);
# - a run resumed 2 -> 1 -> 2 processes continues at the same step, with the data where it
#   stopped, and ends as an unbroken 2-process run does;
# - rank 0 alone writes logs, grids and checkpoints;
# - a killed rank, a stopped one (--mpi-timeout) and a failure while starting each end the
#   whole job within a bounded time, with a message;
# - 2-process cartoonize of a folder with a bad file gives the files of 1 process, byte for
#   byte, the bad file listed once, exit status 1.
# Skipped, saying why, when mpirun is missing or the command was built without MPI.
# Prints "ok NAME" / "FAIL NAME" per case and last "test_dist_cli: P passed, F failed".
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BIN=${CARTOONGAN_BIN:-$ROOT/build/cartoongan}
BUILD_DIR=$(dirname "$BIN")
FIXTURE_FILES=$BUILD_DIR/tools/train_fixture_files
COMPARE=$BUILD_DIR/tools/ckpt_compare
EVENTS=$BUILD_DIR/tests/test_events
WEIGHTS=${CARTOONGAN_WEIGHTS:-$ROOT/weights}
SHARED=$ROOT/../shared/data

skip() {
    echo "skip test_dist_cli: $1"
    echo "test_dist_cli: 0 passed, 0 failed"
    exit 0
}
command -v mpirun >/dev/null || skip "no mpirun (Open MPI: apt-get install openmpi-bin libopenmpi-dev, as tools/install_deps.sh does)"
"$BIN" --version 2>/dev/null | grep -q "built with MPI" ||
    skip "$BIN was built without MPI (make finds mpicc when libopenmpi-dev is installed; sanitizer builds leave it out)"
for f in "$FIXTURE_FILES" "$COMPARE" "$EVENTS" "$WEIGHTS/hayao.safetensors"; do
    [ -e "$f" ] || { echo "FAIL setup: need $f (run make)"; echo "test_dist_cli: 0 passed, 1 failed"; exit 1; }
done

# mpirun refuses root unless told; two cores take two processes only when oversubscribed.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --oversubscribe)
TIMEOUT=""
command -v timeout >/dev/null && TIMEOUT="timeout 300"

T=$(mktemp -d "${TMPDIR:-/tmp}/test_dist_cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

passed=0 failed=0 checks_failed=0 rc=0
# shellcheck source=tests/cli_lib.sh
. "$ROOT/tests/cli_lib.sh"

# mpi K ARGS...: `mpirun -np K cartoongan ARGS`, as cg runs the binary alone.
mpi() {
    local k=$1
    shift
    $TIMEOUT "${MPIRUN[@]}" -np "$k" "$BIN" "$@" >"$T/out" 2>"$T/err"
    rc=$?
}

VGG=$T/vgg.safetensors
"$FIXTURE_FILES" "$VGG" || { echo "FAIL setup: train_fixture_files"; echo "test_dist_cli: 0 passed, 1 failed"; exit 1; }
DATA=$T/data
mkdir -p "$DATA/trainA" "$DATA/trainB" "$DATA/testA"
for i in 0 1 2 3; do
    cp "$SHARED/photos/small_train_set/$i.jpg" "$DATA/trainA/"
    cp "$SHARED/cartoon/anime/$i.jpg" "$DATA/trainB/"
done
cp "$SHARED/photos/small_train_set/8.jpg" "$DATA/testA/"
"$BIN" smooth --path "$DATA" --quiet >/dev/null 2>&1 || echo "  setup: smooth failed" >&2

# 4 photos: an epoch is 2 steps of a global batch of 2; init 1 epoch, GAN 2 epochs = 6 steps.
COMMON=(--dataset "$DATA" --vgg "$VGG" --input-size 32 --init-epochs 1 --epochs 2 --report-every 1 --threads 1 --quiet)
dirs() { echo --log-dir "$1/runs" --checkpoint-dir "$1/ckpt" --result-dir "$1/result"; }

scalars() { # DIR PHASE: "tag step value" lines of the run's event files, sorted
    local f
    for f in "$1/runs/$2"/events.out.tfevents.*; do
        "$EVENTS" dump "$f" || note_failure "$f does not read back"
    done | awk '$1 == "scalar" { print $2, $3, $4 }' | LC_ALL=C sort
}

# close A B TOL: |A - B| <= TOL |B| (TOL relative)
close() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; exit !(d <= t * m) }'; }

# compare_ckpt A B INIT: G's and D's parameters of two checkpoints; sets G_FLIP D_FLIP (the
# fraction of values beyond rounding) and G_REL D_REL (the distance against the change
# from INIT)
compare_ckpt() {
    local line
    line=$("$COMPARE" "$1" "$2" "$3") || { note_failure "ckpt_compare $1 $2"; G_FLIP=1 D_FLIP=1 G_REL=1 D_REL=1; return; }
    G_FLIP=$(echo "$line" | awk '$1 == "G" { print $5 / $3 }')
    D_FLIP=$(echo "$line" | awk '$1 == "D" { print $5 / $3 }')
    G_REL=$(echo "$line" | awk '$1 == "G" { print $9 }')
    D_REL=$(echo "$line" | awk '$1 == "D" { print $9 }')
}

test_help() {
    cg train --help
    expect_out "--mpi-timeout S"
    expect_out "[600]"
    cg cartoonize --help
    expect_out "--mpi-timeout S"
    cg --version
    expect_out "built with MPI"
}

# One GAN step from the same checkpoint (the end of the init phase, written by one process
# of batch 2): 2 processes of batch 1 against 1 process of batch 2. Tolerances (measured
# here: the losses D takes before its update equal to the 9 digits logged, G's adversarial
# loss within 1e-6, 0.04 % of G's and 0.03 % of D's values beyond rounding, the distance
# 0.8 % of the step's change): losses 1e-5 (D's and the content loss) and 1e-4 (after D's
# update), at most 0.5 % of the values, the distance at most 5 %. The control, 1 process
# of batch 1, takes half the data: its losses and parameters are far outside.
same_step() { # LABEL ARGS...: the extra training flags
    local label=$1
    shift
    cg train "${COMMON[@]}" "$@" --batch-size 2 --max-steps 2 $(dirs "$D/start")
    expect_rc 0
    local run
    for run in two one control; do
        mkdir -p "$D/$run"
        cp -r "$D/start/ckpt" "$D/$run/"
    done
    mpi 2 train "${COMMON[@]}" "$@" --batch-size 1 --resume --max-steps 3 $(dirs "$D/two")
    expect_rc 0
    cg train "${COMMON[@]}" "$@" --batch-size 2 --resume --max-steps 3 $(dirs "$D/one")
    expect_rc 0
    cg train "${COMMON[@]}" "$@" --batch-size 1 --resume --max-steps 3 $(dirs "$D/control")
    expect_rc 0
    local a b tag tol
    a=$(scalars "$D/two" gan | grep loss)
    b=$(scalars "$D/one" gan | grep loss)
    [ -n "$b" ] && [ "$(echo "$a" | awk '{ print $1, $2 }')" = "$(echo "$b" | awk '{ print $1, $2 }')" ] ||
        note_failure "$label: the runs logged different losses: [$a] vs [$b]"
    while read -r tag _ va; do
        vb=$(echo "$b" | awk -v t="$tag" '$1 == t { print $3 }')
        case $tag in g_adversarial_loss | g_total_loss) tol=1e-4 ;; *) tol=1e-5 ;; esac
        close "$va" "$vb" "$tol" || note_failure "$label: step 3 $tag: 2 processes $va, 1 process $vb (tolerance $tol)"
    done <<<"$a"
    compare_ckpt "$D/two/ckpt/ckpt-00000003.safetensors" "$D/one/ckpt/ckpt-00000003.safetensors" \
        "$D/start/ckpt/ckpt-00000002.safetensors"
    awk -v g="$G_FLIP" -v d="$D_FLIP" -v gr="$G_REL" -v dr="$D_REL" 'BEGIN { exit !(g <= 0.005 && d <= 0.005 && gr <= 0.05 && dr <= 0.05) }' ||
        note_failure "$label: parameters: G $G_FLIP beyond rounding (distance $G_REL), D $D_FLIP ($D_REL)"
    echo "  $label: 2 processes vs 1: G $G_FLIP of values beyond rounding, distance $G_REL; D $D_FLIP, $D_REL" >&2
    # the control fails the same comparison
    local c
    c=$(scalars "$D/control" gan | awk '$1 == "d_total_loss" { print $3 }')
    vb=$(echo "$b" | awk '$1 == "d_total_loss" { print $3 }')
    close "$c" "$vb" 1e-3 && note_failure "$label: the control's d_total_loss $c is as close as the 2 processes' to $vb"
    compare_ckpt "$D/control/ckpt/ckpt-00000003.safetensors" "$D/one/ckpt/ckpt-00000003.safetensors" \
        "$D/start/ckpt/ckpt-00000002.safetensors"
    awk -v g="$G_FLIP" -v d="$D_FLIP" 'BEGIN { exit !(g > 0.05 && d > 0.05) }' ||
        note_failure "$label: the control's parameters are too close: G $G_FLIP, D $D_FLIP beyond rounding"
    # rank 0 alone wrote: one checkpoint, one set of event files
    expect_files "$D/two/ckpt" "ckpt-00000002.safetensors
ckpt-00000003.safetensors"
    [ "$(ls "$D/two/runs/gan" | wc -l)" -eq 1 ] || note_failure "$label: $(ls "$D/two/runs/gan" | wc -l) event files in gan/"
}

test_same_step_batch_norm() { same_step "batch norm, lsgan" --d-norm batch; }
test_same_step_instance_norm() { same_step "instance norm, bce" --d-norm instance --gan-loss bce; }

# 2 processes stop at step 3 (mid-epoch), 1 process of batch 2 resumes to step 5, 2
# processes finish: the same steps, epochs, files and data as an unbroken 2-process run,
# and its losses to within what rounding grows into over three GAN steps (2 %; the
# parameters within 20 % of the run's change: Adam's steps amplify rounding, see
# doc/training-engine.md).
test_resume_2_1_2() {
    mpi 2 train "${COMMON[@]}" --batch-size 1 $(dirs "$D/unbroken")
    expect_rc 0
    mpi 2 train "${COMMON[@]}" --batch-size 1 --max-steps 3 $(dirs "$D/r")
    expect_rc 0
    expect_err "stopped (--max-steps) at step 3"
    cg train "${COMMON[@]}" --batch-size 2 --resume --max-steps 5 $(dirs "$D/r")
    expect_rc 0
    expect_err "stopped (--max-steps) at step 5"
    mpi 2 train "${COMMON[@]}" --batch-size 1 --resume $(dirs "$D/r")
    expect_rc 0
    expect_files "$D/r/ckpt" "ckpt-00000004.safetensors
ckpt-00000005.safetensors
ckpt-00000006.safetensors"
    expect_files "$D/r/result" "$(files "$D/unbroken/result")"
    local a b
    a=$(scalars "$D/r" gan | grep _loss)
    b=$(scalars "$D/unbroken" gan | grep _loss)
    # each step logged once (a resume that started elsewhere would log some twice or not at all)
    [ -n "$b" ] && [ "$(echo "$a" | awk '{ print $1, $2 }')" = "$(echo "$b" | awk '{ print $1, $2 }')" ] ||
        note_failure "the resumed run logged other steps: [$(echo "$a" | awk '{ print $2 }' | tr '\n' ' ')]"
    local tag step va vb
    while read -r tag step va; do
        vb=$(echo "$b" | awk -v t="$tag" -v s="$step" '$1 == t && $2 == s { print $3 }')
        close "$va" "$vb" 0.02 || note_failure "step $step $tag: resumed $va, unbroken $vb"
    done <<<"$a"
    local k v
    for k in data_pos next_epoch epoch_images processes; do
        v=$(grep -ao "\"$k\":\"[0-9]*\"" "$D/r/ckpt/ckpt-00000006.safetensors" | head -1)
        [ "$v" = "$(grep -ao "\"$k\":\"[0-9]*\"" "$D/unbroken/ckpt/ckpt-00000006.safetensors" | head -1)" ] ||
            note_failure "the last checkpoints' $k differ: $v"
    done
    grep -aq '"data_pos":"12"' "$D/r/ckpt/ckpt-00000006.safetensors" || note_failure "data_pos is not 12 after 6 steps of 2"
    compare_ckpt "$D/r/ckpt/ckpt-00000006.safetensors" "$D/unbroken/ckpt/ckpt-00000006.safetensors" \
        "$D/unbroken/ckpt/ckpt-00000002.safetensors"
    awk -v g="$G_REL" -v d="$D_REL" 'BEGIN { exit !(g <= 0.2 && d <= 0.2) }' ||
        note_failure "the resumed run ends far from the unbroken one: G $G_REL, D $D_REL of the change"
    echo "  resumed 2 -> 1 -> 2 vs unbroken: G $G_REL, D $D_REL of the change since step 2" >&2
}

# kill_rank SIGNAL ARGS...: starts 2 processes training for long, sends SIGNAL to rank 1
# once the first checkpoint is there, and waits for mpirun; sets rc and ELAPSED (seconds).
kill_rank() {
    local sig=$1
    shift
    "${MPIRUN[@]}" -np 2 "$BIN" train "${COMMON[@]}" --epochs 100 --batch-size 1 $(dirs "$D/k") "$@" >"$T/out" 2>"$T/err" &
    local mp=$! i p victim=""
    for i in $(seq 1 600); do
        [ -f "$D/k/ckpt/ckpt-00000002.safetensors" ] && break
        sleep 0.1
    done
    for p in $(pgrep -P $mp); do
        tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && victim=$p
    done
    [ -n "$victim" ] || note_failure "rank 1's process not found"
    local t0=$SECONDS
    [ -n "$victim" ] && kill -"$sig" "$victim"
    # the job must end by itself; after 60 s it is a hang (ended here, and reported)
    for i in $(seq 1 600); do
        kill -0 $mp 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 $mp 2>/dev/null; then
        note_failure "the job still runs 60 s after rank 1 got SIG$sig"
        kill -9 $mp
        for p in $(pgrep -P $mp); do kill -9 "$p"; done
    fi
    wait $mp
    rc=$?
    ELAPSED=$((SECONDS - t0))
    [ -n "$victim" ] && kill -CONT "$victim" 2>/dev/null
}

test_killed_rank() {
    kill_rank KILL
    [ "$rc" -ne 0 ] || note_failure "mpirun exited 0 after rank 1 was killed"
    [ "$ELAPSED" -le 20 ] || note_failure "the job took $ELAPSED s to end"
    expect_err "rank 1"
    expect_err "signal 9"
}

# rank 0 waits 8 s for the stopped rank 1 (more than rank 0's validation and checkpoint
# take, which rank 1 waits for with the same limit, even in a sanitizer build)
test_stuck_rank() {
    kill_rank STOP --mpi-timeout 8
    [ "$rc" -ne 0 ] || note_failure "mpirun exited 0 with rank 1 stopped"
    [ "$ELAPSED" -le 25 ] || note_failure "the job took $ELAPSED s to end"
    expect_err "rank 0 of 2"
    expect_err "no answer from the other processes for 8 s"
}

test_start_failure() {
    mpi 2 train "${COMMON[@]}" --batch-size 1 --dataset "$D/none" $(dirs "$D/x")
    expect_rc 1
    expect_err "$D/none: no such folder"
    [ "$(grep -c "no such folder" "$T/err")" -ge 1 ] || note_failure "no message"
    mpi 2 train "${COMMON[@]}" --batch-size 1 --vgg "$D/missing.safetensors" $(dirs "$D/x")
    expect_rc 1
    expect_err "missing.safetensors"
    [ -e "$D/x/ckpt" ] && [ -n "$(ls "$D/x/ckpt")" ] && note_failure "a checkpoint was written"
    return 0
}

# Photos, a GIF and a video in a folder with a subfolder, a damaged JPEG and a truncated
# GIF among them: 2 processes write the files 1 process writes, byte for byte, and report
# the same failures in the same order, once, with exit status 1.
test_cartoonize_same_files() {
    local in=$D/in m=$ROOT/tests/data/media
    mkdir -p "$in/sub"
    cp "$SHARED"/photos/small_train_set/{0,1,2,3}.jpg "$in/"
    cp "$SHARED/photos/small_train_set/4.jpg" "$in/sub/"
    cp "$m/anim.gif" "$m/clip.mp4" "$in/"
    cp "$m/truncated.gif" "$in/sub/"
    head -c 300 "$in/0.jpg" >"$in/broken.jpg"
    local args=(cartoonize --styles light_shinkai,light_paprika --max-height 64 --weights-dir "$WEIGHTS")
    cg "${args[@]}" --output-dir "$D/one" "$in"
    expect_rc 1
    cp "$T/out" "$D/one.out"
    mpi 2 "${args[@]}" --output-dir "$D/two" "$in"
    expect_rc 1
    [ -n "$(files "$D/one")" ] && [ "$(files "$D/two")" = "$(files "$D/one")" ] ||
        note_failure "the files differ: [$(files "$D/two" | tr '\n' ' ')] vs [$(files "$D/one" | tr '\n' ' ')]"
    diff -r -q "$D/one" "$D/two" >/dev/null || note_failure "the outputs differ: $(diff -r -q "$D/one" "$D/two" | head -3)"
    [ "$(grep '^failed: ' "$T/out")" = "$(grep '^failed: ' "$D/one.out")" ] ||
        note_failure "the failures differ: [$(grep '^failed: ' "$T/out")]"
    expect_out "failed: $in/broken.jpg"
    expect_out "failed: $in/sub/truncated.gif"
    expect_out "cartoonized 5 images, 1 GIF, 1 video (2 styles)"
    expect_out "2 processes did"
    [ "$(grep -c '^cartoonized' "$T/out")" -eq 1 ] || note_failure "the summary is printed $(grep -c '^cartoonized' "$T/out") times"
    # a second run finds everything done
    mpi 2 "${args[@]}" --output-dir "$D/two" "$in"
    expect_out "7 skipped (already done)"
}

for t in test_help test_same_step_batch_norm test_same_step_instance_norm test_resume_2_1_2 test_killed_rank \
    test_stuck_rank test_start_failure test_cartoonize_same_files; do
    run "$t"
done

echo "test_dist_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
