#!/usr/bin/env bash
# run.sh BUILD_DIR SECONDS TARGET...: runs each libFuzzer target built by `make fuzz` for
# SECONDS, one after the other, niced (other work on the machine comes first), then prints
# one line per target: executions, coverage (edges), features, corpus size and the verdict.
# New inputs the fuzzer finds go to BUILD_DIR/corpus/<target>/ (the committed seeds in
# tests/fuzz/corpus/<target>/ are only read); a crash, leak, timeout or out-of-memory input
# goes to BUILD_DIR/artifacts/<target>/ and makes the exit status 1. Keep such an input as
# tests/fuzz/regressions/<target>/<name> once it is fixed, so the test suite replays it.
# Extra libFuzzer flags can be given in FUZZ_FLAGS (e.g. FUZZ_FLAGS=-use_value_profile=1).
# A target's known leaks in a system library it cannot fix are listed in <target>.lsan
# (LeakSanitizer suppressions), which is then used for that target only.
set -u
build=$1 seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
status=0
summary=""
for t in "$@"; do
    bin=$build/fuzz/$t
    corpus=$build/corpus/$t
    art=$build/artifacts/$t
    mkdir -p "$corpus" "$art"
    dict=()
    [ -f "$here/$t.dict" ] && dict=(-dict="$here/$t.dict")
    lsan=${LSAN_OPTIONS:-}
    [ -f "$here/$t.lsan" ] && lsan="suppressions=$here/$t.lsan${lsan:+:$lsan}"
    log=$build/fuzz-$t.log
    echo "== $t: fuzzing for $seconds s (log: $log)"
    # -timeout: an input that takes over 30 s is a hang (a generous wall-clock bound, as a
    # niced fuzzer on a busy machine can be starved for seconds; the slowest real inputs take
    # under 1 s); -rss_limit_mb: one over 2 GB is a memory blow-up
    t0=$(date +%s)
    # shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags
    LSAN_OPTIONS=$lsan nice -n 19 "$bin" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$art/" "${dict[@]}" ${FUZZ_FLAGS:-} \
        "$corpus" "$here/corpus/$t" >"$log" 2>&1
    rc=$?
    took=$(($(date +%s) - t0))
    # the last status line: "#N  DONE  cov: C ft: F corp: K/S ..." or "#N  pulse ..."
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
    if [ "$rc" -eq 0 ]; then verdict=ok; else verdict="FAILED (exit $rc; see $log and $art/)"; status=1; fi
    line="$t: ${execs:-?} executions in $took s, cov ${cov:-?} edges, ft ${ft:-?}, corpus ${corp:-?}: $verdict"
    echo "$line"
    summary+="$line"$'\n'
done
echo
echo "fuzz summary:"
printf '%s' "$summary"
exit $status
