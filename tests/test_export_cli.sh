#!/usr/bin/env bash
# test_export_cli.sh: end-to-end tests of custom styles: `cartoongan export --checkpoint-dir
# DIR --name NAME` (G out of the newest valid training checkpoint, written where
# cartoonize finds it) and `cartoonize --styles NAME` with such a style. Checkpoints are
# made by tests/make_checkpoint.c (compiled here against the built library) from the
# released hayao weights, so an exported style must cartoonize byte for byte as hayao.
# Prints "ok NAME" / "FAIL NAME" per case and last "test_export_cli: P passed, F failed".
#
# Weights: $CARTOONGAN_WEIGHTS (set by `make test`), else weights/.
# Run from anywhere: tests/test_export_cli.sh
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BIN=${CARTOONGAN_BIN:-$ROOT/build/cartoongan} # CARTOONGAN_BIN: test another build
LIB=$(dirname "$BIN")/libcartoongan.a
DATA=$ROOT/tests/data/images
W=${CARTOONGAN_WEIGHTS:-$ROOT/weights}
if [ ! -x "$BIN" ] || [ ! -f "$LIB" ] || [ ! -f "$W/hayao.safetensors" ] || [ ! -f "$W/shinkai.safetensors" ]; then
    echo "FAIL setup: need $BIN, $LIB and $W/{hayao,shinkai}.safetensors (run make)"
    echo "test_export_cli: 0 passed, 1 failed"
    exit 1
fi
W=$(cd "$W" && pwd)
export CARTOONGAN_WEIGHTS=$W
TIMEOUT=""
command -v timeout >/dev/null && TIMEOUT="timeout 300"

T=$(mktemp -d "${TMPDIR:-/tmp}/test_export_cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

passed=0 failed=0 checks_failed=0 rc=0

# shellcheck source=tests/cli_lib.sh
. "$ROOT/tests/cli_lib.sh"

# The checkpoint writer, linked as the tests are (CFLAGS carries a sanitizer build's flags).
# shellcheck disable=SC2086
if ! ${CC:-cc} -std=c11 ${CFLAGS:-} -Iinclude -Isrc -D_GNU_SOURCE -o "$T/make_checkpoint" \
    tests/make_checkpoint.c "$LIB" -lm -pthread 2>"$T/cc.err"; then
    echo "FAIL setup: cannot build tests/make_checkpoint.c: $(head -c 300 "$T/cc.err")"
    echo "test_export_cli: 0 passed, 1 failed"
    exit 1
fi
mkck() { "$T/make_checkpoint" "$@" || note_failure "make_checkpoint $*"; }

expect_no() { [ ! -e "$1" ] || note_failure "unexpected $1"; }

# A checkpoint directory: hayao at step 200, shinkai at the older step 100, so that
# exporting the right one is visible in the pictures.
make_ckpts() { # DIR
    mkdir -p "$1"
    mkck "$W/hayao.safetensors" "$1/ckpt-00000200.safetensors" 200
    mkck "$W/shinkai.safetensors" "$1/ckpt-00000100.safetensors" 100
}

# The reference: hayao's cartoon of the test photo, at the test photo's tiny size.
reference() {
    [ -f "$T/ref/hayao/plain.png" ] && return
    cg cartoonize --weights-dir "$W" --styles hayao --skip-comparison --output-dir "$T/ref" \
        "$DATA/plain.png"
    [ "$rc" -eq 0 ] || note_failure "reference hayao run failed: $(head -c 300 "$T/err")"
}

# ---- tests ----

test_help() {
    cg export --help
    expect_rc 0
    local f
    for f in "export [--force] [--fp16] [--quiet] SRC DEST.safetensors" "--checkpoint-dir DIR" \
        "--name NAME" "--out-dir DIR" "--force" "--fp16" "--quiet" "$W" "(default: refuse)" \
        "(default: float32, exact)"; do
        expect_out "$f"
    done
    cg cartoonize --help
    expect_out "WEIGHTS_DIR/NAME.safetensors"
    expect_out "--all-styles"
}

# Export from a checkpoint directory: the newest (highest step) is taken, extra tensors
# (D, Adam) are skipped, and the style cartoonizes exactly as the G it holds.
test_export_newest() {
    make_ckpts "$D/ck"
    mkdir -p "$D/w"
    cg export --checkpoint-dir "$D/ck" --name mine --out-dir "$D/w"
    expect_rc 0
    expect_out "ckpt-00000200.safetensors (step 200) -> $D/w/mine.safetensors"
    expect_files "$D/w" "mine.safetensors"
    # the tensors' bytes are hayao's (the headers differ only in the metadata)
    cmp -s <(tail -c 44000000 "$D/w/mine.safetensors") <(tail -c 44000000 "$W/hayao.safetensors") ||
        note_failure "exported tensors differ from hayao's"
    reference
    cp "$W/shinkai.safetensors" "$D/w/"
    cg cartoonize --weights-dir "$D/w" --styles mine --skip-comparison --output-dir "$D/o" "$DATA/plain.png"
    expect_rc 0
    cmp -s "$D/o/mine/plain.png" "$T/ref/hayao/plain.png" ||
        note_failure "the exported style does not cartoonize as hayao"
    # released and custom styles together; the comparison keeps the order asked for
    cg cartoonize --weights-dir "$D/w" --styles mine,shinkai --comparison-view horizontal \
        --output-dir "$D/o2" "$DATA/plain.png"
    expect_rc 0
    expect_files "$D/o2" "comparison/plain.png
mine/plain.png
shinkai/plain.png"
    cmp -s "$D/o2/mine/plain.png" "$T/ref/hayao/plain.png" || note_failure "mine differs in a two-style run"
    local sig
    sig=$(od -An -tu1 -j 16 -N 8 "$D/o2/comparison/plain.png" | tr -s ' ')
    [ "$sig" = " 0 0 0 51 0 0 0 11" ] || note_failure "comparison is not 51x11 (3 panels): $sig"
}

# The default --out-dir is the weights directory cartoonize uses ($CARTOONGAN_WEIGHTS).
test_default_out_dir() {
    make_ckpts "$D/ck"
    mkdir -p "$D/w"
    CARTOONGAN_WEIGHTS=$D/w cg export --checkpoint-dir "$D/ck" --name my_style-2 --quiet
    expect_rc 0
    [ ! -s "$T/out" ] || note_failure "--quiet printed: $(head -c 200 "$T/out")"
    expect_files "$D/w" "my_style-2.safetensors"
    reference
    CARTOONGAN_WEIGHTS=$D/w cg cartoonize --styles my_style-2 --skip-comparison --output-dir "$D/o" "$DATA/plain.png"
    expect_rc 0
    cmp -s "$D/o/my_style-2/plain.png" "$T/ref/hayao/plain.png" || note_failure "default out dir style differs"
}

# A damaged newest checkpoint is named in a warning and the next newest valid one is used.
test_fallback_truncated() {
    mkdir -p "$D/ck" "$D/w"
    mkck "$W/hayao.safetensors" "$D/ck/ckpt-00000200.safetensors" 200
    mkck "$W/shinkai.safetensors" "$D/ck/ckpt-00000300.safetensors" 300
    head -c 5000000 "$D/ck/ckpt-00000300.safetensors" >"$D/ck/t" && mv "$D/ck/t" "$D/ck/ckpt-00000300.safetensors"
    printf 'not a checkpoint' >"$D/ck/ckpt-00000400.safetensors"
    # neither a checkpoint's name nor the "model" metadata: ignored / refused
    cp "$W/shinkai.safetensors" "$D/ck/ckpt-1.safetensors"
    touch "$D/ck/.ckpt-00000900.safetensors.tmp-abcdef"
    cg export --checkpoint-dir "$D/ck" --name fb --out-dir "$D/w"
    expect_rc 0
    expect_err "warning: skipping $D/ck/ckpt-00000400.safetensors: "
    expect_err "warning: skipping $D/ck/ckpt-00000300.safetensors: "
    expect_err "truncated"
    [ "$(wc -l <"$T/err")" -eq 2 ] || note_failure "expected 2 warning lines: $(cat "$T/err")"
    expect_out "ckpt-00000200.safetensors (step 200)"
    reference
    cg cartoonize --weights-dir "$D/w" --styles fb --skip-comparison --output-dir "$D/o" "$DATA/plain.png"
    expect_rc 0
    cmp -s "$D/o/fb/plain.png" "$T/ref/hayao/plain.png" || note_failure "fallback took the wrong checkpoint"
    # a generator file under a checkpoint's name (no "model": "cartoongan-checkpoint", no G.
    # tensors) and a checkpoint whose metadata names another model are both skipped
    mkdir -p "$D/ck2"
    cp "$W/shinkai.safetensors" "$D/ck2/ckpt-00000005.safetensors"
    mkck "$W/shinkai.safetensors" "$D/ck2/ckpt-00000006.safetensors" 6 something-else
    cg export --checkpoint-dir "$D/ck2" --name x --out-dir "$D/w"
    expect_rc 1
    expect_err "ckpt-00000006.safetensors: not a training checkpoint"
    expect_err "ckpt-00000005.safetensors: "
    expect_err "$D/ck2: no valid training checkpoint (2 ckpt-*.safetensors files, none readable)"
    expect_no "$D/w/x.safetensors"
}

test_no_checkpoint() {
    mkdir -p "$D/empty" "$D/w"
    touch "$D/empty/notes.txt" "$D/empty/ckpt-latest.safetensors"
    cg export --checkpoint-dir "$D/empty" --name mine --out-dir "$D/w"
    expect_rc 1
    expect_err "$D/empty: no training checkpoint (ckpt-*.safetensors); run \`cartoongan train\` first"
    [ "$(wc -l <"$T/err")" -eq 1 ] || note_failure "not one line: $(cat "$T/err")"
    cg export --checkpoint-dir "$D/nowhere" --name mine --out-dir "$D/w"
    expect_rc 1
    expect_err "$D/nowhere: cannot open the checkpoint directory"
    expect_files "$D/w" ""
}

test_bad_usage() {
    mkdir -p "$D/ck"
    local n
    for n in "" "../evil" "a/b" "a.b" ".hidden" "sp ace" "x\$y" \
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; do
        cg export --checkpoint-dir "$D/ck" --name "$n" --out-dir "$D/w"
        expect_rc 2
        expect_err "invalid --name '$n'"
        expect_err "try 'cartoongan export --help'"
    done
    cg export --checkpoint-dir "$D/ck" --out-dir "$D/w"
    expect_rc 2
    expect_err "--checkpoint-dir needs --name NAME"
    cg export --name mine
    expect_rc 2
    expect_err "--name needs --checkpoint-dir"
    cg export --checkpoint-dir "$D/ck" --name mine "$W/hayao.safetensors"
    expect_rc 2
    expect_err "unexpected argument"
    cg export --checkpoint-dir
    expect_rc 2
    expect_no "$D/w"
}

test_force_and_fp16() {
    make_ckpts "$D/ck"
    mkdir -p "$D/w"
    echo keep >"$D/w/mine.safetensors"
    cg export --checkpoint-dir "$D/ck" --name mine --out-dir "$D/w"
    expect_rc 1
    expect_err "$D/w/mine.safetensors already exists (use --force to overwrite)"
    [ "$(cat "$D/w/mine.safetensors")" = keep ] || note_failure "existing file was changed"
    cg export --checkpoint-dir "$D/ck" --name mine --out-dir "$D/w" --force --fp16
    expect_rc 0
    expect_files "$D/w" "mine.safetensors"
    local size
    size=$(stat -c %s "$D/w/mine.safetensors")
    [ "$size" -gt 22000000 ] && [ "$size" -lt 23000000 ] || note_failure "fp16 file is $size bytes"
    grep -qa '"dtype":"F16"' "$D/w/mine.safetensors" || note_failure "fp16 file holds no F16 tensor"
    # it matches export's first form with --fp16 on hayao itself, tensor bytes and all
    cg export --fp16 "$W/hayao.safetensors" "$D/w/ref16.safetensors"
    expect_rc 0
    cmp -s <(tail -c 22000000 "$D/w/mine.safetensors") <(tail -c 22000000 "$D/w/ref16.safetensors") ||
        note_failure "fp16 tensors differ from export --fp16 of hayao"
    cg cartoonize --weights-dir "$D/w" --styles mine --skip-comparison --output-dir "$D/o" "$DATA/plain.png"
    expect_rc 0
    [ -s "$D/o/mine/plain.png" ] || note_failure "fp16 style made no picture"
    # the output directory is created, and no temporary file is left anywhere
    cg export --checkpoint-dir "$D/ck" --name mine --out-dir "$D/new/deeper"
    expect_rc 0
    expect_files "$D/new" "deeper/mine.safetensors"
}

# cartoonize --styles with custom names: unknown names list what the weights dir holds,
# unsafe names are refused before anything is read.
test_custom_style_names() {
    mkdir -p "$D/w"
    ln -s "$W/hayao.safetensors" "$D/w/zeta.safetensors"
    ln -s "$W/hayao.safetensors" "$D/w/alpha.safetensors"
    ln -s "$W/shinkai.safetensors" "$D/w/shinkai.safetensors"
    ln -s "$W/shinkai.safetensors" "$D/w/.hidden.safetensors"
    ln -s "$W/shinkai.safetensors" "$D/w/shinkai.f16.safetensors"
    cg cartoonize --weights-dir "$D/w" --styles nope --output-dir "$D/o" "$DATA/plain.png"
    expect_rc 2
    expect_err "unknown style 'nope': no $D/w/nope.safetensors (styles in $D/w: shinkai, alpha, zeta)"
    expect_err "try 'cartoongan cartoonize --help'"
    [ "$(wc -l <"$T/err")" -eq 2 ] || note_failure "unknown style: not two lines"
    # --weights-dir after --styles is taken into account
    cg cartoonize --styles shinkai,nope --weights-dir "$D/w" --output-dir "$D/o" "$DATA/plain.png"
    expect_rc 2
    expect_err "unknown style 'nope'"
    cg cartoonize --weights-dir "$D/nowhere" --styles nope "$DATA/plain.png"
    expect_rc 2
    expect_err "the weights directory $D/nowhere cannot be read"
    local n
    for n in "../hayao" "x/y" "a.b" "hayao.safetensors" ".hidden" "-x" "a b"; do
        cg cartoonize --weights-dir "$D/w" "--styles=$n" --output-dir "$D/o" "$DATA/plain.png"
        expect_rc 2
        case $n in -x) ;; *) expect_err "invalid style name '$n'" ;; esac
    done
    expect_no "$D/o"
    # custom names are case-sensitive file names; released ones take any case
    reference
    # a released name always passes the options (missing weights then say `make weights`)
    cg cartoonize --weights-dir "$D/w" --styles alpha HAYAO --skip-comparison --output-dir "$D/o" \
        "$DATA/plain.png"
    expect_rc 1
    expect_err "cannot load style 'hayao' from $D/w/hayao.safetensors"
    expect_err "make weights"
    cg cartoonize --weights-dir "$D/w" --styles alpha Shinkai --skip-comparison --output-dir "$D/o" \
        "$DATA/plain.png"
    expect_rc 0
    expect_files "$D/o" "alpha/plain.png
shinkai/plain.png"
    cmp -s "$D/o/alpha/plain.png" "$T/ref/hayao/plain.png" || note_failure "alpha differs from hayao"
    cg cartoonize --weights-dir "$D/w" --styles Alpha --output-dir "$D/o" "$DATA/plain.png"
    expect_rc 2
    expect_err "unknown style 'Alpha'"
    # --all-styles: the four released ones, then the custom ones --styles names
    for n in hayao hosoda paprika; do ln -s "$W/$n.safetensors" "$D/w/$n.safetensors" 2>/dev/null; done
    if [ -f "$W/hosoda.safetensors" ] && [ -f "$W/paprika.safetensors" ]; then
        cg cartoonize --weights-dir "$D/w" --all-styles --styles zeta --max-height 8 \
            --comparison-view horizontal --output-dir "$D/all" "$DATA/plain.png"
        expect_rc 0
        expect_files "$D/all" "comparison/plain.png
hayao/plain.png
hosoda/plain.png
paprika/plain.png
shinkai/plain.png
zeta/plain.png"
        cmp -s "$D/all/zeta/plain.png" "$D/all/hayao/plain.png" || note_failure "zeta differs from hayao"
    fi
}

# More styles than one run takes is a usage error; up to that, any number run.
test_many_styles() {
    mkdir -p "$D/w"
    local i list=""
    for i in $(seq 1 17); do
        ln -s "$W/hayao.safetensors" "$D/w/s$i.safetensors"
        list="$list${list:+,}s$i"
    done
    cg cartoonize --weights-dir "$D/w" "--styles=$list" --output-dir "$D/o" "$DATA/plain.png"
    expect_rc 2
    expect_err "too many styles (at most 16 in one run)"
    cg cartoonize --weights-dir "$D/w" --styles s1,s2,s3,s4,s5 --max-height 8 --skip-comparison \
        --output-dir "$D/o" "$DATA/plain.png"
    expect_rc 0
    expect_out "(5 styles)"
}

# The first form from a TensorFlow 2 checkpoint (issue 13): the seed's light generator,
# kept by make in $W/ckpt/, is written as make wrote it; anything else is refused whole.
test_tf_checkpoint() {
    local ck=$W/ckpt/light_shinkai_ckpt
    if [ ! -f "$ck/generator.index" ] || [ ! -f "$W/light_shinkai.safetensors" ]; then
        note_failure "need $ck and $W/light_shinkai.safetensors (run make)"
        return
    fi
    cg export --help
    expect_out "TensorFlow 2 checkpoint of the seed project's light generator"
    expect_out "light_shinkai_ckpt/"
    mkdir -p "$D/o"
    cg export "$ck" "$D/o/a.safetensors"
    expect_rc 0
    expect_out "exported $ck (TensorFlow checkpoint of the light generator, 126 tensors) -> $D/o/a.safetensors"
    cmp -s "$D/o/a.safetensors" "$W/light_shinkai.safetensors" || note_failure "differs from make's file"
    grep -qa '"architecture":"cartoongan-light","source":"light_shinkai_ckpt"' "$D/o/a.safetensors" ||
        note_failure "metadata: $(head -c 200 "$D/o/a.safetensors" | tail -c 150)"
    # the .index file names the same checkpoint; a trailing slash changes nothing
    cg export --quiet "$ck/generator.index" "$D/o/b.safetensors"
    expect_rc 0
    [ ! -s "$T/out" ] || note_failure "--quiet printed: $(head -c 200 "$T/out")"
    cmp -s "$D/o/a.safetensors" "$D/o/b.safetensors" || note_failure ".index form differs"
    cg export --quiet "$ck/" "$D/o/c.safetensors"
    expect_rc 0
    cmp -s "$D/o/a.safetensors" "$D/o/c.safetensors" || note_failure "DIR/ form differs"
    # an existing DEST is kept without --force; --fp16 halves the data
    echo keep >"$D/o/k.safetensors"
    cg export "$ck" "$D/o/k.safetensors"
    expect_rc 1
    expect_err "$D/o/k.safetensors already exists (use --force to overwrite)"
    [ "$(cat "$D/o/k.safetensors")" = keep ] || note_failure "existing file was changed"
    cg export --force --fp16 "$ck" "$D/o/k.safetensors"
    expect_rc 0
    local size
    size=$(stat -c %s "$D/o/k.safetensors")
    [ "$size" -gt 1757000 ] && [ "$size" -lt 1800000 ] || note_failure "fp16 file is $size bytes"
    grep -qa '"dtype":"F16"' "$D/o/k.safetensors" || note_failure "fp16 file holds no F16 tensor"
    expect_files "$D/o" "a.safetensors
b.safetensors
c.safetensors
k.safetensors"

    # a TensorFlow checkpoint of something else (tests/data/tfckpt/tiny_ckpt: tensors a and
    # b/x) is refused, and nothing is written
    cg export "$ROOT/tests/data/tfckpt/tiny_ckpt" "$D/o/tiny.safetensors"
    expect_rc 1
    expect_err "$ROOT/tests/data/tfckpt/tiny_ckpt: not the light generator's checkpoint: it has no tensor flat_conv1/model/layer-1/kernel"
    [ "$(wc -l <"$T/err")" -eq 1 ] || note_failure "not one line: $(cat "$T/err")"
    # damaged data: the tensor's CRC32C says so
    mkdir -p "$D/bad"
    cp "$ck"/* "$D/bad/"
    printf 'ABCD' | dd of="$D/bad/generator.data-00000-of-00001" bs=1 seek=81625 conv=notrunc 2>/dev/null
    cmp -s "$D/bad/generator.data-00000-of-00001" "$ck/generator.data-00000-of-00001" &&
        note_failure "the damage changed nothing"
    cg export "$D/bad" "$D/o/bad.safetensors"
    expect_rc 1
    expect_err "$D/bad/generator.data-00000-of-00001: tensor flat_conv1/model/layer-1/kernel: CRC32C mismatch (the data is damaged)"
    # the data file missing
    rm "$D/bad/generator.data-00000-of-00001"
    cg export "$D/bad" "$D/o/bad.safetensors"
    expect_rc 1
    expect_err "$D/bad/generator.data-00000-of-00001: cannot open"
    expect_files "$D/o" "a.safetensors
b.safetensors
c.safetensors
k.safetensors"
}

for t in test_help test_export_newest test_default_out_dir test_fallback_truncated \
    test_no_checkpoint test_bad_usage test_force_and_fp16 test_custom_style_names test_many_styles \
    test_tf_checkpoint; do
    run "$t"
done

echo "test_export_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
