#!/usr/bin/env bash
# run.sh: runs every test program named on the command line (C test binaries), then
# the CLI test scripts (tests/test_*_cli.sh, test_cli.sh first), and adds up
# their "NAME: P passed, F failed" lines. The last line is "all: N passed, M failed"; the
# exit status is non-zero if any test failed, or a program crashed, exited non-zero or
# never printed its summary (each such program counts as one failure on top of what it
# reported).
# Usage (from `make test`): tests/run.sh build/tests/test_a build/tests/test_b ...
set -u

here=$(cd "$(dirname "$0")" && pwd)
total_pass=0 total_fail=0
log=$(mktemp "${TMPDIR:-/tmp}/run_tests.XXXXXX") || exit 1
trap 'rm -f "$log"' EXIT

run_one() { # PROGRAM [ARGS...]
    local name
    name=$(basename "$1")
    "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    # the program's own summary: the last line of the form "NAME: P passed, F failed"
    local line p f
    line=$(grep -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\1/')
        f=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\2/')
    else
        p=0 f=0
    fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    if [ -z "$line" ] || { [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; }; then
        if [ "$rc" -gt 128 ]; then
            echo "FAIL $name: killed by signal $((rc - 128)) (crashed)"
        elif [ -z "$line" ]; then
            echo "FAIL $name: exited with status $rc without a summary line"
        else
            echo "FAIL $name: exited with status $rc"
        fi
        total_fail=$((total_fail + 1))
    fi
}

for prog in "$@"; do
    if [ ! -x "$prog" ]; then
        echo "FAIL $prog: not found or not executable"
        total_fail=$((total_fail + 1))
        continue
    fi
    run_one "$prog"
done
run_one "$here/test_cli.sh"
run_one "$here/test_media_cli.sh"
run_one "$here/test_inputs_cli.sh"
run_one "$here/test_smooth_cli.sh"
run_one "$here/test_export_cli.sh"
run_one "$here/test_train_cli.sh"
run_one "$here/test_dist_cli.sh"

echo "all: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
