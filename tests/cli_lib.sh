# cli_lib.sh: the helpers shared by the end-to-end CLI test scripts (sourced, not run).
# The sourcing script sets BIN, T (a temp dir), TIMEOUT, and passed=0 failed=0
# checks_failed=0 rc=0 before calling them.

# cg ARGS...: runs the binary; sets $rc, leaves stdout/stderr in $T/out and $T/err.
cg() {
    $TIMEOUT "$BIN" "$@" >"$T/out" 2>"$T/err"
    rc=$?
}

note_failure() {
    echo "  FAIL: $*" >&2
    checks_failed=$((checks_failed + 1))
}

expect_rc() {
    if [ "$rc" -ne "$1" ]; then
        note_failure "exit status $rc, expected $1"
        sed 's/^/    stderr: /' "$T/err" | head -5 >&2
    fi
}

expect_err() { # SUBSTRING: on stderr
    grep -qF -- "$1" "$T/err" || note_failure "stderr lacks '$1': $(head -c 300 "$T/err")"
}

expect_out() { # SUBSTRING: on stdout
    grep -qF -- "$1" "$T/out" || note_failure "stdout lacks '$1': $(head -c 300 "$T/out")"
}

# files DIR: every file under DIR (relative, sorted), temp files included.
files() { (cd "$1" 2>/dev/null && find . -type f | sed 's|^\./||' | LC_ALL=C sort); }

expect_files() { # DIR EXPECTED-NEWLINE-LIST
    local got
    got=$(files "$1")
    [ "$got" = "$2" ] || note_failure "files under $1 are [${got//$'\n'/ }], expected [${2//$'\n'/ }]"
}

run() { # TEST-FUNCTION: runs it in a fresh directory $D
    local name=$1
    checks_failed=0
    D=$T/$name
    mkdir -p "$D"
    "$name"
    if [ $checks_failed -eq 0 ]; then
        echo "ok   $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        failed=$((failed + 1))
    fi
}
