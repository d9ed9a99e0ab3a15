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

# ---- reading image headers without any image tool ----

bytes() { od -An -tu1 -v -j "$2" -N "$3" "$1" | tr -s ' \n' '  '; }

# dims FILE: prints WxH from the PNG, JPEG or WebP header.
dims() {
    local f=$1 b
    set -- $(bytes "$f" 0 16)
    if [ "${1:-}" = 137 ] && [ "${2:-}" = 80 ]; then
        set -- $(bytes "$f" 16 8)
        echo "$(($1 << 24 | $2 << 16 | $3 << 8 | $4))x$(($5 << 24 | $6 << 16 | $7 << 8 | $8))"
    elif [ "${1:-}" = 255 ] && [ "${2:-}" = 216 ]; then
        local pos=2 n=0
        while [ $n -lt 200 ]; do
            n=$((n + 1))
            set -- $(bytes "$f" $pos 4)
            [ "${1:-}" = 255 ] || return 1
            if [ "$2" = 255 ]; then pos=$((pos + 1)); continue; fi
            case $2 in
            192 | 193 | 194 | 195 | 197 | 198 | 199 | 201 | 202 | 203 | 205 | 206 | 207)
                set -- $(bytes "$f" $((pos + 5)) 4)
                echo "$(($3 << 8 | $4))x$(($1 << 8 | $2))"
                return 0
                ;;
            esac
            pos=$((pos + 2 + ($3 << 8 | $4)))
        done
        return 1
    elif [ "${1:-}" = 82 ] && [ "${9:-}" = 87 ]; then # RIFF....WEBP
        b=$(bytes "$f" 12 4)
        case $b in
        *" 86 80 56 32"*) # "VP8 ": 14-bit sizes after the start code
            set -- $(bytes "$f" 26 4)
            echo "$((($1 | $2 << 8) & 16383))x$((($3 | $4 << 8) & 16383))" ;;
        *" 86 80 56 76"*) # "VP8L": 14-bit sizes minus one, packed
            set -- $(bytes "$f" 21 4)
            b=$(($1 | $2 << 8 | $3 << 16 | $4 << 24))
            echo "$(((b & 16383) + 1))x$(((b >> 14 & 16383) + 1))" ;;
        *" 86 80 56 88"*) # "VP8X": 24-bit canvas sizes minus one
            set -- $(bytes "$f" 24 6)
            echo "$(($1 + ($2 << 8) + ($3 << 16) + 1))x$(($4 + ($5 << 8) + ($6 << 16) + 1))" ;;
        *) return 1 ;;
        esac
    else
        return 1
    fi
}

expect_dims() { # FILE WxH
    local d
    d=$(dims "$1")
    [ "$d" = "$2" ] || note_failure "$1 is ${d:-unreadable}, expected $2"
}

kind() { # FILE: png, jpeg, webp or ?
    case $(bytes "$1" 0 4) in
    *"137 80 78 71"*) echo png ;;
    *"255 216 255"*) echo jpeg ;;
    *"82 73 70 70"*) echo webp ;;
    *) echo "?" ;;
    esac
}
