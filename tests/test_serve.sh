#!/usr/bin/env bash
# test_serve.sh: `cartoongan serve` over real HTTP on a free loopback port: the headers
# that make the page cross-origin isolated (and --no-isolation without them), MIME types,
# revalidation, and that nothing outside the root is served (.., encoded .., symbolic
# links leading out, hidden files), that bad escapes, other methods and malformed or
# oversized requests get a 4xx, and that the server is still up after all of them.
# Prints "ok NAME" / "FAIL NAME" per case and last "test_serve: P passed, F failed".
# Needs bash and curl. Run from anywhere: tests/test_serve.sh
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
    '[[ $help == *"--host ADDR"*"default: 127.0.0.1"* && $help == *"--port N"*"default: 8080"* && $help == *"--root DIR"*"default:"* && $help == *"--no-isolation"*"default:"* && $help == *"--quiet"*"default:"* ]]'

"$BIN" serve --root "$T/nowhere" >/dev/null 2>"$T/e"
rc=$?
check "a missing root is refused" '[ $rc = 1 ] && grep -q "not a folder" "$T/e"' "status $rc: $(cat "$T/e")"
"$BIN" serve --port 70000 >/dev/null 2>&1
rc=$?
check "a bad port is a usage error" '[ $rc = 2 ]' "status $rc"

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

finish
