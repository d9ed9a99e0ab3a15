#!/usr/bin/env bash
# run.sh: the browser app's tests, run by `make test` after `make web`:
#   1. tests/test_kernels.c compiled to wasm with pthreads, in node (every micro-kernel,
#      the wasm SIMD one included, and the thread pool on real wasm threads);
#   2. tests/web/wasm.test.mjs: the single-threaded module alone (node --test);
#   3. tests/web/e2e.mjs: the page in headless Chromium, isolated (threads) and not.
# A part whose tools are missing prints "skipped: <reason>" (CI installs them all:
# .ci/run). Each part's output is indented; the last line is "web: P passed, F failed".
set -u

cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
passed=0 failed=0

# Adds a part's "P passed, F failed" to the totals; a part that crashed or printed no
# summary counts as one failure.
count() { # NAME STATUS OUTPUT-FILE PASS-REGEX FAIL-REGEX
    local p f
    p=$(grep -Eo "$4" "$3" | tail -n 1 | grep -Eo '[0-9]+' | head -n 1)
    f=$(grep -Eo "$5" "$3" | tail -n 1 | grep -Eo '[0-9]+' | head -n 1)
    if [ -z "$p" ] || [ -z "$f" ]; then
        echo "FAIL $1: no summary (exit status $2)"
        failed=$((failed + 1))
        return
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $1: exit status $2"
        failed=$((failed + 1))
    fi
}

out=$(mktemp "${TMPDIR:-/tmp}/test_web.XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT

if ! command -v node >/dev/null; then
    echo "skipped: the browser app's tests: node not found (tools/install_deps.sh installs it)"
elif [ ! -f "$BUILD/web/cartoongan_st.js" ] || [ ! -f "$BUILD/wasm-test/test_kernels.js" ]; then
    echo "skipped: the browser app's tests: $BUILD/web not built (emscripten missing? tools/install_deps.sh, then make web)"
else
    echo "  wasm kernels (node, pthreads):"
    # emscripten 3.1.6 would fetch() its .wasm under node, which cannot read files
    (cd "$BUILD/wasm-test" && timeout 600 node --no-experimental-fetch test_kernels.js) >"$out" 2>&1
    rc=$?
    sed 's/^/    /' "$out"
    count "wasm test_kernels" "$rc" "$out" '[0-9]+ passed' '[0-9]+ failed'

    echo "  wasm module (node --test):"
    WEB_ROOT=$PWD/$BUILD/web timeout 600 node --test --test-reporter=tap tests/web/wasm.test.mjs >"$out" 2>&1
    rc=$?
    grep -E '^(not )?ok |^# (pass|fail)|PSNR' "$out" | sed 's/^/    /'
    count "wasm.test.mjs" "$rc" "$out" '^# pass [0-9]+' '^# fail [0-9]+'

    chromium=${CHROMIUM:-/usr/bin/chromium}
    if [ ! -x "$chromium" ]; then
        echo "skipped: the end-to-end browser test: $chromium not found (apt-get install chromium)"
    elif [ ! -d web/node_modules/playwright-core ]; then
        echo "skipped: the end-to-end browser test: web/node_modules/playwright-core missing (npm ci --prefix web)"
    else
        echo "  the page in headless Chromium:"
        WEB_ROOT=$PWD/$BUILD/web CHROMIUM=$chromium timeout 900 node tests/web/e2e.mjs >"$out" 2>&1
        rc=$?
        sed 's/^/    /' "$out"
        count "e2e.mjs" "$rc" "$out" '[0-9]+ passed' '[0-9]+ failed'
    fi
fi
echo "web: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
