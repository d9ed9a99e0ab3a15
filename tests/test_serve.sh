#!/usr/bin/env bash
# test_serve.sh: `cartoongan serve` over real HTTP on a free loopback port: the headers
# that make the page cross-origin isolated (and --no-isolation without them), MIME types,
# revalidation, and that nothing outside the root is served (.., encoded .., symbolic
# links leading out, hidden files), that bad escapes, other methods and malformed or
# oversized requests get a 4xx, and that the server is still up after all of them; and
# that slow clients cannot lock others out: 200 connections from 127.0.0.2 trickling
# their headers (tests/slow_client.py) hold at most --max-per-ip of them, a visitor at
# 127.0.0.1 is still answered within 1 s, the held ones are closed at the header deadline
# although they never stop sending, and a download longer than that deadline is not cut.
# Prints "ok NAME" / "FAIL NAME" per case and last "test_serve: P passed, F failed".
# Needs bash and curl (and python3 for the slow clients). Run from anywhere:
# tests/test_serve.sh
set -u

cd "$(dirname "$0")/.." || exit 1
BIN=${CARTOONGAN_BIN:-$PWD/build/cartoongan}
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1${2:+: $2}"; }
check() { if eval "$2"; then ok "$1"; else fail "$1" "${3:-}"; fi; } # NAME CONDITION [DETAIL]
finish() { echo "test_serve: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }

if ! command -v curl >/dev/null; then
    echo "skipped: curl not found (apt-get install curl)"
    finish
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/test_serve.XXXXXX") || exit 1
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT

# The served folder: an app, a sub folder, a hidden file, a link inside and two outside.
R=$T/root
mkdir -p "$R/sub" "$R/emptydir"
echo '<!doctype html><title>t</title>' >"$R/index.html"
echo 'console.log(1)' >"$R/app.js"
printf '\0asm\1\0\0\0' >"$R/m.wasm"
echo 'sub' >"$R/sub/index.html"
echo 'secret' >"$R/.secret"
echo 'outside' >"$T/outside.txt"
ln -s ../outside.txt "$R/out.txt"
ln -s /etc "$R/etc"
ln -s app.js "$R/inside.js"

# Starts the server; sets PORT and SPID. Args go to `cartoongan serve`.
start() {
    : >"$T/out"
    "$BIN" serve --port 0 --root "$R" --quiet "$@" >"$T/out" 2>"$T/err" &
    SPID=$!
    PIDS+=("$SPID")
    PORT=
    for _ in $(seq 100); do
        PORT=$(grep -o 'http://127.0.0.1:[0-9]*' "$T/out" | sed 's/.*://')
        [ -n "$PORT" ] && return 0
        sleep 0.05
    done
    return 1
}
U() { echo "http://127.0.0.1:$PORT$1"; }
code() { curl -s -o /dev/null -w '%{http_code}' --path-as-is "$@"; } # ARGS... -> status
headers() { curl -s -D - -o /dev/null --path-as-is "$@" | tr -d '\r'; }
# Sends raw bytes on a fresh connection; prints the status line's code (or "none").
raw() {
    local line
    line=$(printf "$1" | timeout 5 curl -s --max-time 4 telnet://127.0.0.1:"$PORT" 2>/dev/null | head -n 1 | tr -d '\r')
    echo "${line:-none}" | awk '{print ($1 ~ /^HTTP/) ? $2 : "none"}'
}

# --help lists every flag with its default
help=$("$BIN" serve --help)
check "--help lists every flag with its default" \
    '[[ $help == *"--host ADDR"*"default: 127.0.0.1"* && $help == *"--port N"*"default: 8080"* && $help == *"--root DIR"*"default:"* && $help == *"--no-isolation"*"default:"* && $help == *"--quiet"*"default:"* &&
       $help == *"--max-per-ip N"*"default: 16"* && $help == *"--max-connections N"*"default: 256"* && $help == *"--header-timeout S"*"default: 10"* ]]'

"$BIN" serve --root "$T/nowhere" >/dev/null 2>"$T/e"
rc=$?
check "a missing root is refused" '[ $rc = 1 ] && grep -q "not a folder" "$T/e"' "status $rc: $(cat "$T/e")"
"$BIN" serve --port 70000 >/dev/null 2>&1
rc=$?
check "a bad port is a usage error" '[ $rc = 2 ]' "status $rc"
for bad in "--max-per-ip -1" "--max-connections 3" "--header-timeout 0" "--header-timeout x"; do
    "$BIN" serve $bad >/dev/null 2>&1
    rc=$?
    check "serve $bad is a usage error" '[ $rc = 2 ]' "status $rc"
done

if ! start; then
    fail "server starts" "$(cat "$T/out" "$T/err")"
    finish
fi
ok "server starts on a free port ($PORT)"
grep -q "^cartoongan serve: serving $R at http://127.0.0.1:$PORT/" "$T/out" && ok "prints the URL" || fail "prints the URL" "$(cat "$T/out")"

h=$(headers "$(U /)")
check "GET / serves index.html" '[[ $h == "HTTP/1.1 200"* && $h == *"Content-Type: text/html; charset=utf-8"* ]]' "$h"
check "isolation headers" '[[ $h == *"Cross-Origin-Opener-Policy: same-origin"* && $h == *"Cross-Origin-Embedder-Policy: require-corp"* && $h == *"Cross-Origin-Resource-Policy: same-origin"* ]]' "$h"
h=$(headers "$(U /m.wasm)")
check "wasm is application/wasm" '[[ $h == *"Content-Type: application/wasm"* ]]' "$h"
h=$(headers "$(U /app.js)")
check "js is text/javascript" '[[ $h == *"Content-Type: text/javascript"* ]]' "$h"
check "a link inside the root is served" '[ "$(code "$(U /inside.js)")" = 200 ]'
check "a folder's index.html" '[ "$(curl -s "$(U /sub/)")" = sub ]'
body=$(curl -s -I "$(U /app.js)" -o /dev/null -w '%{size_download}')
check "HEAD sends no body" '[ "$body" = 0 ]'
etag=$(headers "$(U /app.js)" | sed -n 's/^ETag: //p')
check "revalidation answers 304" '[ -n "$etag" ] && [ "$(code -H "If-None-Match: $etag" "$(U /app.js)")" = 304 ]' "etag '$etag'"

for p in /../outside.txt /../../../../etc/passwd /%2e%2e/outside.txt /%2E%2E/%2E%2E/etc/passwd /sub/%2e%2e/%2e%2e/outside.txt \
    /%2e%2e%2foutside.txt /./index.html /out.txt /etc/passwd /.secret /nonexistent /emptydir/ /sub//index.html; do
    c=$(code "$(U "$p")")
    check "$p is not served" '[ "$c" = 404 ] || [ "$c" = 400 ]' "HTTP $c"
done
check "an encoded NUL is a bad request" '[ "$(code "$(U /index.html%00.js)")" = 400 ]'
check "a malformed escape is a bad request" '[ "$(code "$(U /%zz)")" = 400 ]'
check "POST is 405 with Allow" '[[ "$(headers -X POST -d x=1 "$(U /)")" == "HTTP/1.1 405"*"Allow: GET, HEAD"* ]]'
check "DELETE is 405" '[ "$(code -X DELETE "$(U /index.html)")" = 405 ]'

# Malformed HTTP, byte by byte: each answered with a 4xx (or the connection closed),
# never a crash.
for req in 'GARBAGE\r\n\r\n' 'GET\r\n\r\n' 'GET / HTTP/1.1\r\n\r\n' 'GET / HTTP/9.9\r\nHost: x\r\n\r\n' \
    'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n' 'GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n' \
    'GET /\x01\x02 HTTP/1.1\r\nHost: x\r\n\r\n'; do
    c=$(raw "$req")
    check "malformed request '${req:0:24}' gets a 4xx or a close" '[[ $c == 4?? || $c == 505 || $c == none ]]' "got $c"
done
long=$(head -c 20000 /dev/zero | tr '\0' a)
c=$(code "$(U "/$long")")
check "a 20000-byte URL gets a 4xx" '[[ $c == 4?? ]]' "got $c"
c=$(code -H "X-Big: $long$long$long$long" "$(U /)")
check "an 80 KB header gets a 4xx" '[[ $c == 4?? ]]' "got $c"
check "still serving after all that" '[ "$(code "$(U /)")" = 200 ] && kill -0 $SPID'

kill -TERM "$SPID"
wait "$SPID"
rc=$?
check "SIGTERM stops it cleanly" '[ $rc = 0 ]' "status $rc"

start --no-isolation || fail "server starts with --no-isolation"
h=$(headers "$(U /)")
check "--no-isolation drops COOP and COEP" '[[ $h == "HTTP/1.1 200"* && $h != *"Cross-Origin-Opener-Policy"* && $h != *"Cross-Origin-Embedder-Policy"* ]]' "$h"
kill "$SPID"

# ---- Slow clients ----
# Runs tests/slow_client.py (200 connections from 127.0.0.2, a header byte each every
# 0.5 s, for $1 seconds; "early" means closed within 1 s) in the background; sets SLOW.
slow_start() {
    rm -f "$T/ready"
    python3 tests/slow_client.py 127.0.0.1 "$PORT" 127.0.0.2 200 0.5 "$1" 1.0 "$T/ready" >"$T/slow" 2>&1 &
    SLOW=$!
    PIDS+=("$SLOW")
    for _ in $(seq 100); do
        [ -e "$T/ready" ] && { sleep 0.3; return 0; } # and let the server turn the excess away
        sleep 0.05
    done
    return 1
}
# Prints "CODE SECONDS" of a GET / from 127.0.0.1 given at most 1 s.
timed_get() { curl -s -o /dev/null -m 1 --interface 127.0.0.1 -w '%{http_code} %{time_total}' "$(U /)"; }
field() { sed -n "s/.*\<$1=\([-0-9.]*\).*/\1/p" "$T/slow"; } # NAME: from slow_client's line

if ! command -v python3 >/dev/null; then
    echo "skipped: slow clients: python3 not found"
elif ! python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.2", 0))' 2>/dev/null; then
    echo "skipped: slow clients: cannot bind 127.0.0.2 (loopback is not 127.0.0.0/8 here)"
else
    # A server with room for 64 connections: without a per-address limit, the 200 slow
    # ones would take all of them (the control case below).
    start --max-per-ip 16 --max-connections 64 --header-timeout 2 || fail "server starts with limits"
    t0=$EPOCHREALTIME
    if slow_start 4.5; then
        answers=()
        for _ in 1 2 3 4 5; do answers+=("$(timed_get)"); done
        check "with 200 slow connections from 127.0.0.2, 127.0.0.1 is answered within 1 s (5 times)" \
            '! printf "%s\n" "${answers[@]}" | grep -qv "^200 0\."' "${answers[*]}"
        wait "$SLOW"
        echo "     slow clients: $(cat "$T/slow") (run $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s)"
        opened=$(field opened) early=$(field early) held=$(field held) closed=$(field closed)
        cmin=$(field closed_min) cmax=$(field closed_max) open=$(field open)
        check "the 200 slow connections were all made" '[ "$opened" = 200 ]' "$(cat "$T/slow")"
        check "at most --max-per-ip 16 of them were held, the rest closed at once" \
            '[ "${held:-0}" -ge 1 ] && [ "$held" -le 16 ] && [ "$early" = $((200 - held)) ]' "$(cat "$T/slow")"
        # closed at the 2 s deadline (checked every 0.5 s), not at the 30 s idle timeout,
        # although each sent a byte every 0.5 s
        check "the held ones were closed 2 to 3.5 s after opening, while still sending" \
            '[ "$closed" = "$held" ] && [ "$open" = 0 ] && awk -v a="$cmin" -v b="$cmax" "BEGIN { exit !(a >= 1.95 && b <= 3.5) }"' \
            "$(cat "$T/slow")"
    else
        fail "slow clients start" "$(cat "$T/slow")"
    fi
    check "still serving after the slow clients" '[ "$(code "$(U /)")" = 200 ] && kill -0 $SPID'

    # An answer that takes longer than the header deadline is not cut: 32 MB at 8 MB/s,
    # about 4 s (the last few MB wait in the socket buffers, not in the server).
    head -c 33554432 /dev/zero >"$R/big.bin"
    dl=$(curl -s -o /dev/null --limit-rate 8M -m 20 -w '%{http_code} %{size_download} %{time_total}' "$(U /big.bin)")
    check "a 4 s download is not cut by the 2 s header deadline" \
        '[[ $dl == "200 33554432 "* ]] && awk -v t="${dl##* }" "BEGIN { exit !(t >= 2.5) }"' "$dl"
    rm -f "$R/big.bin"
    kill "$SPID"

    # Control: the same without a per-address limit. The slow connections fill the server
    # and 127.0.0.1 waits in the listen queue: the per-address limit is what kept it open.
    start --max-per-ip 0 --max-connections 64 --header-timeout 5 || fail "server starts without a per-address limit"
    if slow_start 2.5; then
        a=$(timed_get)
        check "control: without --max-per-ip the slow connections lock 127.0.0.1 out" '[[ $a != 200* ]]' "$a"
        wait "$SLOW"
    else
        fail "slow clients start (control)" "$(cat "$T/slow")"
    fi
    # Each pool thread is woken to stop, also one at its share of the connection limit,
    # which no longer watches the listening socket.
    t0=$EPOCHREALTIME
    kill -TERM "$SPID"
    wait "$SPID"
    rc=$?
    took=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    check "SIGTERM stops a server that was full at once" '[ $rc = 0 ] && awk -v t="$took" "BEGIN { exit !(t < 1) }"' \
        "status $rc after $took s"
fi

finish
