#!/usr/bin/env bash
# test_train_cli.sh: end-to-end tests of `cartoongan train` on a tiny dataset made from
# ../shared-like inputs in tests/data (photos as trainA and testA, cartoons as trainB,
# trainB_smooth made by `cartoongan smooth`), at 32x32 with the deterministic stand-in
# VGG19 of build/tools/train_fixture_files: TensorBoard scalars and images read back with
# test_events' independent reader, validation grids and progress.gif, checkpoints (the
# last 3 kept), --resume after a stop and after kill -9 giving exactly an unbroken run's
# checkpoint, --init-from, and the refusals: no --vgg, missing folders, a corrupt image, a
# corrupt checkpoint, an unwritable checkpoint folder, a diverging loss. Prints
# "ok NAME" / "FAIL NAME" per case and last "test_train_cli: P passed, F failed".
# Needs the styles' weights (CARTOONGAN_WEIGHTS, as make test sets).
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BIN=${CARTOONGAN_BIN:-$ROOT/build/cartoongan}
BUILD_DIR=$(dirname "$BIN")
FIXTURE_FILES=$BUILD_DIR/tools/train_fixture_files
EVENTS=$BUILD_DIR/tests/test_events # "test_events dump FILE"
WEIGHTS=${CARTOONGAN_WEIGHTS:-$ROOT/weights}
SHARED=$ROOT/../shared/data
if [ ! -x "$BIN" ] || [ ! -x "$FIXTURE_FILES" ] || [ ! -x "$EVENTS" ] || [ ! -f "$WEIGHTS/hayao.safetensors" ]; then
    echo "FAIL setup: need $BIN, $FIXTURE_FILES, $EVENTS and $WEIGHTS/hayao.safetensors (run make)"
    echo "test_train_cli: 0 passed, 1 failed"
    exit 1
fi
TIMEOUT=""
command -v timeout >/dev/null && TIMEOUT="timeout 600"

T=$(mktemp -d "${TMPDIR:-/tmp}/test_train_cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

passed=0 failed=0 checks_failed=0 rc=0
# shellcheck source=tests/cli_lib.sh
. "$ROOT/tests/cli_lib.sh"

VGG=$T/vgg.safetensors
"$FIXTURE_FILES" "$VGG" || { echo "FAIL setup: train_fixture_files"; echo "test_train_cli: 0 passed, 1 failed"; exit 1; }

# A dataset of 4 photos, 4 cartoons (smoothed by `cartoongan smooth`), 2 validation photos.
DATA=$T/data
mkdir -p "$DATA/trainA" "$DATA/trainB" "$DATA/testA"
for i in 0 1 2 3; do
    cp "$SHARED/photos/small_train_set/$i.jpg" "$DATA/trainA/"
    cp "$SHARED/cartoon/anime/$i.jpg" "$DATA/trainB/"
done
cp "$SHARED/photos/small_train_set/8.jpg" "$SHARED/photos/small_train_set/9.jpg" "$DATA/testA/"
"$BIN" smooth --path "$DATA" --quiet >/dev/null 2>&1 || echo "  setup: smooth failed" >&2

# 2 steps an epoch (4 photos, batch 2): init 1 epoch, GAN 2 epochs = 6 steps.
COMMON=(--input-size 32 --batch-size 2 --init-epochs 1 --epochs 2 --report-every 1 --vgg "$VGG" --threads 2 --quiet)
train() { # DIR ARGS...: a run with its outputs under DIR
    local d=$1
    shift
    cg train --dataset "$DATA" --log-dir "$d/runs" --checkpoint-dir "$d/ckpt" --result-dir "$d/result" "${COMMON[@]}" "$@"
}

scalars() { # DIR PHASE TAG: "step value" lines of the run's event files
    local f
    for f in "$1/runs/$2"/events.out.tfevents.*; do
        "$EVENTS" dump "$f" || note_failure "$f does not read back"
    done | awk -v t="$3" '$1 == "scalar" && $2 == t { print $3, $4 }'
}

test_help() {
    cg train --help
    expect_rc 0
    for f in --dataset --vgg --input-size "[256]" --batch-size "[4]" --init-epochs "[10; 0 with --init-from]" \
        --epochs "[100]" --lr-init "[2e-4]" --lr-g "[8e-5]" --lr-d "[3e-5]" --content-weight "[10]" \
        --style-weight "[0]" --gan-loss "[lsgan]" --d-norm "[batch]" --init-from --log-dir "[runs]" \
        --checkpoint-dir "[training_checkpoints]" --result-dir "[result]" --report-every "[100]" \
        --save-every "[500]" --resume --seed "[0]" --threads --quiet --max-steps; do
        expect_out "$f"
    done
}

test_needs_vgg() {
    cg train --dataset "$DATA"
    expect_rc 2
    expect_err "--vgg is required"
    expect_err "vgg19.tv_in1k"
    expect_err "--vgg none"
}

test_dataset_errors() {
    cg train --dataset "$D/nothing" --vgg "$VGG" --quiet
    expect_rc 1
    expect_err "$D/nothing: no such folder; a dataset holds trainA/"
    mkdir -p "$D/ds/trainB" "$D/ds/trainA"
    cg train --dataset "$D/ds" --vgg "$VGG" --quiet --checkpoint-dir "$D/c" --log-dir "$D/l" --result-dir "$D/r"
    expect_rc 1
    expect_err "$D/ds/trainA: no images"
    expect_err "training photos"
    cp "$DATA/trainA/0.jpg" "$D/ds/trainA/"
    cg train --dataset "$D/ds" --vgg "$VGG" --quiet --checkpoint-dir "$D/c" --log-dir "$D/l" --result-dir "$D/r"
    expect_rc 1
    expect_err "$D/ds/trainB: no images"
    cp "$DATA/trainB/0.jpg" "$D/ds/trainB/"
    cg train --dataset "$D/ds" --vgg "$VGG" --quiet --checkpoint-dir "$D/c" --log-dir "$D/l" --result-dir "$D/r" </dev/null
    expect_rc 1
    expect_err "$D/ds/trainB_smooth is missing"
    expect_err "cartoongan smooth --path $D/ds"
}

test_train_and_logs() {
    train "$T/A"
    expect_rc 0
    expect_files "$T/A/ckpt" "ckpt-00000002.safetensors
ckpt-00000004.safetensors
ckpt-00000006.safetensors"
    # every loss every step (report-every 1), in the right phase
    [ "$(scalars "$T/A" init content_loss | wc -l)" -eq 2 ] || note_failure "init content_loss: $(scalars "$T/A" init content_loss)"
    for tag in content_loss g_adversarial_loss g_total_loss d_total_loss d_real_loss d_fake_loss d_smooth_loss \
        images_per_second learning_rate/g learning_rate/d; do
        [ "$(scalars "$T/A" gan $tag | wc -l)" -eq 4 ] || note_failure "gan $tag: $(scalars "$T/A" gan $tag | tr '\n' ' ')"
    done
    [ "$(scalars "$T/A" gan learning_rate/g | awk '{ print ($2 > 7.99e-5 && $2 < 8.01e-5) }' | sort -u)" = 1 ] ||
        note_failure "gan learning_rate/g: $(scalars "$T/A" gan learning_rate/g | tr '\n' ' ')"
    scalars "$T/A" gan style_loss | grep -q . && note_failure "style_loss logged with --style-weight 0"
    local dump
    dump=$(for f in "$T/A"/runs/*/events.out.tfevents.*; do "$EVENTS" dump "$f"; done)
    for tag in init_sample_images init_val_sample_images init_generated_images init_val_generated_images \
        gan_sample_images gan_val_sample_images gan_generated_images gan_val_generated_images; do
        echo "$dump" | grep -q "^image $tag .* png-ok$" || note_failure "no image $tag"
    done
    echo "$dump" | grep -q "png-bad" && note_failure "an image summary does not decode"
    # validation grids at each epoch's end, and the GIF of them
    expect_files "$T/A/result" "progress.gif
step00000002_init_epoch001.png
step00000004_gan_epoch001.png
step00000006_gan_epoch002.png"
    [ "$(head -c 6 "$T/A/result/progress.gif")" = "GIF89a" ] || note_failure "progress.gif is not a GIF"
}

test_resume_equals_unbroken() {
    # reports every 4 steps, so the GAN phase's one report (its step 4, step 6 in all)
    # averages steps on both sides of the stop at step 3: the running sums are restored
    train "$D/unbroken" --report-every 4
    expect_rc 0
    train "$D" --report-every 4 --max-steps 3
    expect_rc 0
    expect_err "stopped (--max-steps) at step 3"
    [ -f "$D/ckpt/ckpt-00000003.safetensors" ] || note_failure "no checkpoint at step 3"
    train "$D" --report-every 4 --resume
    expect_rc 0
    cmp -s "$D/ckpt/ckpt-00000006.safetensors" "$T/A/ckpt/ckpt-00000006.safetensors" ||
        note_failure "the resumed run's last checkpoint differs from the unbroken run's"
    local tag
    for tag in g_total_loss d_total_loss content_loss; do
        [ -n "$(scalars "$D/unbroken" gan $tag)" ] || note_failure "no gan $tag in the unbroken run"
        [ "$(scalars "$D" gan $tag)" = "$(scalars "$D/unbroken" gan $tag)" ] ||
            note_failure "gan $tag differs: $(scalars "$D" gan $tag | tr '\n' ' ') vs $(scalars "$D/unbroken" gan $tag | tr '\n' ' ')"
    done
}

test_kill9_resume() {
    cg train --dataset "$DATA" --log-dir "$D/runs" --checkpoint-dir "$D/ckpt" --result-dir "$D/result" "${COMMON[@]}" \
        --save-every 1 &
    local pid=$! i
    for i in $(seq 1 600); do
        [ -f "$D/ckpt/ckpt-00000004.safetensors" ] && break
        sleep 0.1
    done
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    [ -f "$D/ckpt/ckpt-00000006.safetensors" ] && echo "  (note: the run finished before kill -9)" >&2
    train "$D" --resume
    expect_rc 0
    cmp -s "$D/ckpt/ckpt-00000006.safetensors" "$T/A/ckpt/ckpt-00000006.safetensors" ||
        note_failure "after kill -9 and --resume the last checkpoint differs from the unbroken run's"
}

test_init_from() {
    cg train --dataset "$DATA" --log-dir "$D/runs" --checkpoint-dir "$D/ckpt" --result-dir "$D/result" --input-size 32 \
        --batch-size 2 --epochs 1 --vgg "$VGG" --threads 2 --quiet --init-from hayao --weights-dir "$WEIGHTS"
    expect_rc 0
    [ -e "$D/runs/init" ] && note_failure "--init-from ran an init phase"
    expect_files "$D/ckpt" "ckpt-00000002.safetensors"
    cg train --dataset "$DATA" --log-dir "$D/runs2" --checkpoint-dir "$D/ckpt2" --result-dir "$D/result2" --input-size 32 \
        --batch-size 2 --epochs 1 --vgg "$VGG" --quiet --init-from nosuchstyle --weights-dir "$WEIGHTS"
    expect_rc 1
    expect_err "nosuchstyle"
}

test_corrupt_image_goes_on() {
    mkdir -p "$D/ds"
    cp -r "$DATA"/trainA "$DATA"/trainB "$DATA"/trainB_smooth "$D/ds/"
    head -c 500 "$DATA/trainA/0.jpg" >"$D/ds/trainA/broken.jpg"
    cg train --dataset "$D/ds" --log-dir "$D/runs" --checkpoint-dir "$D/ckpt" --result-dir "$D/result" --input-size 32 \
        --batch-size 2 --init-epochs 1 --epochs 1 --vgg "$VGG" --threads 2 --quiet
    expect_rc 0
    expect_err "broken.jpg"
    expect_err "images skipped as unreadable"
}

test_corrupt_checkpoint_refused() {
    mkdir -p "$D/ckpt"
    cp "$T/A/ckpt/ckpt-00000004.safetensors" "$D/ckpt/"
    head -c 100000 "$T/A/ckpt/ckpt-00000006.safetensors" >"$D/ckpt/ckpt-00000006.safetensors"
    local before
    before=$(cksum <"$D/ckpt/ckpt-00000006.safetensors")
    train "$D" --resume
    expect_rc 1
    expect_err "cannot resume"
    expect_err "ckpt-00000006.safetensors"
    [ "$(cksum <"$D/ckpt/ckpt-00000006.safetensors")" = "$before" ] || note_failure "the corrupt checkpoint was changed"
}

test_unwritable_dirs() {
    touch "$D/file"
    cg train --dataset "$DATA" --log-dir "$D/runs" --checkpoint-dir "$D/file/ckpt" --result-dir "$D/result" "${COMMON[@]}"
    expect_rc 1
    expect_err "$D/file/ckpt (--checkpoint-dir)"
    cg train --dataset "$DATA" --log-dir "$D/file/runs" --checkpoint-dir "$D/ckpt" --result-dir "$D/result" "${COMMON[@]}"
    expect_rc 1
    expect_err "(--log-dir)"
}

test_divergence_keeps_checkpoint() {
    # a learning rate that blows G up in the GAN phase: the run stops naming the step and
    # the loss; the checkpoint of the init phase stays the last one
    train "$D" --lr-g 1e30
    expect_rc 1
    expect_err "not finite"
    expect_err "the last good checkpoint is $D/ckpt/ckpt-00000002.safetensors"
    expect_files "$D/ckpt" "ckpt-00000002.safetensors"
}

test_full_disk_keeps_checkpoint() {
    # a file size limit (as a full disk: writes fail with EFBIG) below a checkpoint's
    # 147 MB: the resumed run's next checkpoint fails, and the one it resumed from stays
    mkdir -p "$D/ckpt"
    cp "$T/A/ckpt/ckpt-00000004.safetensors" "$D/ckpt/"
    local before
    before=$(cksum <"$D/ckpt/ckpt-00000004.safetensors")
    (
        trap '' XFSZ
        ulimit -f 100000
        train "$D" --resume
        echo "$rc" >"$D/rc"
    )
    rc=$(cat "$D/rc")
    expect_rc 1
    expect_err "cannot write a checkpoint"
    expect_err "the previous one is intact: $D/ckpt/ckpt-00000004.safetensors"
    [ "$(cksum <"$D/ckpt/ckpt-00000004.safetensors")" = "$before" ] || note_failure "the previous checkpoint changed"
    expect_files "$D/ckpt" "ckpt-00000004.safetensors"
}

for t in test_help test_needs_vgg test_dataset_errors test_train_and_logs test_resume_equals_unbroken \
    test_kill9_resume test_init_from test_corrupt_image_goes_on test_corrupt_checkpoint_refused \
    test_unwritable_dirs test_divergence_keeps_checkpoint test_full_disk_keeps_checkpoint; do
    run "$t"
done

echo "test_train_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
