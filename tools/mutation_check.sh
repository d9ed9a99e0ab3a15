#!/usr/bin/env bash
# mutation_check.sh COUNT [SEED]: makes COUNT mutated copies of the shared photos (bit flips,
# truncations, overwritten and inserted bytes, and header edits: PNG IHDR sizes and chunk
# lengths, JPEG SOF sizes and marker segment lengths, WebP RIFF, chunk and canvas sizes; see
# tests/mutate.c) and runs every one through `cartoongan cartoonize --max-height 32
# --skip-comparison`. Each must either give an image or be refused with exit status 1 and a
# message; a crash, a sanitizer report or a hang (over MUTATION_TIMEOUT seconds a file,
# default 30) fails the check. Files go in batches of 10 per run (the weights load once per
# run); a batch that fails is run again file by file to name the culprit, and the culprits
# are copied to MUTATION_FAILURES (default ./mutation_failures) to be kept as regressions.
#
# Sources: the JPEG and PNG photos under ../shared/data/photos of at most 400 KB, and the
# WebP samples of tests/data/images and tests/fuzz/corpus/fuzz_webp. The binary is
# $CARTOONGAN_BIN (default build/cartoongan); the weights $CARTOONGAN_WEIGHTS or weights/.
# Last line: "mutation_check: N files: D decoded, R refused; C crashes, H hangs" (exit 0
# when C and H are 0). Run from anywhere: tools/mutation_check.sh 300
set -u
count=${1:?usage: tools/mutation_check.sh COUNT [SEED]}
seed=${2:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CARTOONGAN_BIN:-$root/build/cartoongan}
export CARTOONGAN_WEIGHTS=${CARTOONGAN_WEIGHTS:-$root/weights}
per_file=${MUTATION_TIMEOUT:-30}
keep=${MUTATION_FAILURES:-$PWD/mutation_failures}
batch=10

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mutation_check.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
${CC:-cc} -O2 -o "$tmp/mutate" "$root/tests/mutate.c" || exit 2

sources=()
while IFS= read -r f; do sources+=("$f"); done < <(
    find "$root/../shared/data/photos" -type f \( -iname '*.jpg' -o -iname '*.png' \) -size -400k 2>/dev/null | LC_ALL=C sort
    find "$root/tests/data/images" "$root/tests/fuzz/corpus/fuzz_webp" -name '*.webp' ! -name 'huge*' | LC_ALL=C sort)
[ ${#sources[@]} -gt 0 ] || { echo "mutation_check: no source images"; exit 2; }
mkdir -p "$tmp/in"
"$tmp/mutate" "$seed" "$count" "$tmp/in" "${sources[@]}" || exit 2

crashes=0 hangs=0 refused=0 total=0
# run FILE...: one cartoonize run; sets $verdict to ok, crash, sanitizer or hang
run() {
    rm -rf "$tmp/out"
    timeout -s KILL $((per_file * $#)) "$BIN" cartoonize --max-height 32 --skip-comparison \
        --quiet --output-dir "$tmp/out" "$@" >"$tmp/stdout" 2>"$tmp/stderr"
    local rc=$?
    if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:|AddressSanitizer' "$tmp/stderr"; then
        verdict=sanitizer
    elif [ $rc -eq 137 ]; then
        verdict=hang
    elif [ $rc -ne 0 ] && [ $rc -ne 1 ]; then
        verdict="crash (exit status $rc)"
    else
        verdict=ok
    fi
}

files=("$tmp"/in/*)
for ((i = 0; i < ${#files[@]}; i += batch)); do
    set -- "${files[@]:i:batch}"
    run "$@"
    if [ "$verdict" = ok ]; then
        total=$((total + $#))
        refused=$((refused + $(grep -c "^cartoongan: $tmp/in/" "$tmp/stderr")))
        continue
    fi
    for f in "$@"; do
        run "$f"
        total=$((total + 1))
        case $verdict in
        ok) refused=$((refused + $(grep -c "^cartoongan: $tmp/in/" "$tmp/stderr"))) ;;
        hang) hangs=$((hangs + 1)) ;;
        *) crashes=$((crashes + 1)) ;;
        esac
        if [ "$verdict" != ok ]; then
            mkdir -p "$keep"
            cp "$f" "$keep/"
            echo "FAIL $(basename "$f"): $verdict (kept in $keep/)"
            sed 's/^/    /' "$tmp/stderr" | head -20
        fi
    done
done
echo "mutation_check: $total files: $((total - refused - crashes - hangs)) decoded, $refused refused; $crashes crashes, $hangs hangs"
[ $crashes -eq 0 ] && [ $hangs -eq 0 ]
