#!/usr/bin/env bash
# test_install.sh: cartoongan as it is installed (issue 16): `make install` into a DESTDIR
# lays out the files, libcartoongan.so.0 exports exactly the API of cartoongan.h, the
# examples build against the installed library through pkg-config (PKG_CONFIG_SYSROOT_DIR)
# and give the CLI's pixels (C, and Python through ctypes), the man pages cover every
# command and option, the installed command looks for weights where the README says and
# names those places when a style is missing, `fetch-weights` (from ../shared and over
# HTTP from a local server) writes what `make` writes and refuses bytes that are not the
# release's, the installed `serve` serves the installed browser app and the styles' weights
# from the weights folders, `make uninstall` leaves nothing, and `make deb` gives a
# lintian-clean package with shlibs Depends (and the browser app when emscripten is here). Installing that package needs root and changes the system, so it is
# done by hand (README, "Installing").
# Prints "ok NAME" / "FAIL NAME" per case and last "test_install: P passed, F failed".
#
# Needs the build (`make test` builds what it installs first: $CARTOONGAN_BUILD, default
# build), the weights ($CARTOONGAN_WEIGHTS, else weights/), ../shared/weights, pkg-config,
# help2man, python3, curl, dpkg-dev, lintian and libjpeg-turbo-progs (tools/install_deps.sh).
# Run from anywhere: tests/test_install.sh
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BUILD=${CARTOONGAN_BUILD:-build}
W=${CARTOONGAN_WEIGHTS:-$ROOT/weights}
SHARED=$ROOT/../shared/weights
DATA=$ROOT/tests/data/images
missing=""
for f in "$W/hayao.safetensors" "$W/hosoda.safetensors" "$W/light_paprika.safetensors" \
    "$SHARED/cartoongan/hayao/conv01_1.weight.npy" "$SHARED/cartoongan_light/light_paprika_ckpt/checkpoint"; do
    [ -f "$f" ] || missing="$missing $f"
done
for t in pkg-config help2man python3 curl nm readelf dpkg-deb dpkg-shlibdeps lintian man djpeg cjpeg; do
    command -v $t >/dev/null || missing="$missing $t"
done
if [ -n "$missing" ]; then
    echo "FAIL setup: missing$missing (run tools/install_deps.sh and make)"
    echo "test_install: 0 passed, 1 failed"
    exit 1
fi
W=$(cd "$W" && pwd)
VERSION=$(sed -n 's/^#define CG_VERSION "\(.*\)"/\1/p' include/cartoongan.h)
TIMEOUT=""
command -v timeout >/dev/null && TIMEOUT="timeout 300"

T=$(mktemp -d "${TMPDIR:-/tmp}/test_install.XXXXXX") || exit 1
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

passed=0 failed=0 checks_failed=0 rc=0

# shellcheck source=tests/cli_lib.sh
. "$ROOT/tests/cli_lib.sh"

check() { # DESCRIPTION COMMAND...
    local what=$1
    shift
    "$@" || note_failure "$what"
}

# mk ARGS...: this checkout's make, quietly, as a fresh top-level make (the outer `make
# test`'s job server is not ours).
mk() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$ROOT" BUILD="$BUILD" WEIGHTS_DIR="$W" "$@" \
        >"$T/make.out" 2>&1 || { note_failure "make $*: $(tail -n 5 "$T/make.out")"; return 1; }
}

# Everything under a folder that is not a folder, as "path" lines (symbolic links too).
tree() { (cd "$1" && find . ! -type d | sed 's|^\./||' | LC_ALL=C sort); }

STAGE=$T/stage
P=/usr/local # the default PREFIX, which `make test` built for
STYLES_INSTALLED=$(for s in shinkai hayao hosoda paprika light_shinkai light_paprika; do
    [ -f "$W/$s.safetensors" ] && echo "share/cartoongan/weights/$s.safetensors"; done)

# A stand-in for the browser app `make web` builds (emscripten's output is not needed to see
# where install puts it): the page's own files and the engine's, with recognisable bytes,
# and the weights `make web` lays out beside them, which install leaves out.
APP=$T/webapp
APP_FILES="$(cd web && ls ./*.html ./*.js ./*.css ./*.svg 2>/dev/null | sed 's|^\./||')
cartoongan_st.js
cartoongan_st.wasm
cartoongan_mt.js
cartoongan_mt.wasm
cartoongan_mt.worker.js"
mkdir -p "$APP/weights"
for f in $APP_FILES; do echo "app file $f" >"$APP/$f"; done
echo "not installed" >"$APP/weights/hayao.safetensors"

# ---- make install into a DESTDIR ----

test_layout() {
    mk install DESTDIR="$STAGE" WEB_OUT="$APP" || return
    local want
    want=$(printf '%s\n' bin/cartoongan include/cartoongan.h lib/libcartoongan.a lib/libcartoongan.so \
        lib/libcartoongan.so.0 "lib/libcartoongan.so.$VERSION" lib/pkgconfig/cartoongan.pc \
        share/man/man1/cartoongan.1 share/man/man1/cartoongan-{bench,cartoonize,export,fetch-weights,serve,smooth,train}.1 \
        $STYLES_INSTALLED $(echo "$APP_FILES" | sed 's|^|share/cartoongan/web/|') | sed "s|^|${P#/}/|" | LC_ALL=C sort)
    [ "$(tree "$STAGE")" = "$want" ] ||
        note_failure "installed [$(tree "$STAGE" | tr '\n' ' ')], expected [$(echo "$want" | tr '\n' ' ')]"
    check "libcartoongan.so -> libcartoongan.so.0" [ "$(readlink "$STAGE$P/lib/libcartoongan.so")" = libcartoongan.so.0 ]
    check "libcartoongan.so.0 -> libcartoongan.so.$VERSION" \
        [ "$(readlink "$STAGE$P/lib/libcartoongan.so.0")" = "libcartoongan.so.$VERSION" ]
    check "the header is include/cartoongan.h" cmp -s include/cartoongan.h "$STAGE$P/include/cartoongan.h"
    check "hayao's weights installed" cmp -s "$W/hayao.safetensors" "$STAGE$P/share/cartoongan/weights/hayao.safetensors"
    check "bin/cartoongan is executable" [ -x "$STAGE$P/bin/cartoongan" ]
    check "the app's files installed" cmp -s "$APP/cartoongan_mt.wasm" "$STAGE$P/share/cartoongan/web/cartoongan_mt.wasm"
    BIN=$STAGE$P/bin/cartoongan cg --version
    expect_out "cartoongan $VERSION"
}

# The dynamic symbols are the functions and data cartoongan.h declares, nothing else, each
# in the CARTOONGAN_0 version node; the soname is libcartoongan.so.0.
test_symbols() {
    local so=$STAGE$P/lib/libcartoongan.so.$VERSION
    nm -D --defined-only "$so" >"$T/nm" || { note_failure "nm -D $so"; return; }
    local got want
    got=$(awk '$2 != "A" { print $3 }' "$T/nm" | sed 's/@@CARTOONGAN_0$//' | LC_ALL=C sort)
    want=$( (grep -oE '\bcg_[a-z0-9_]+ *\(' include/cartoongan.h | tr -d ' (' &&
        grep -oE '^extern [^;]*\bcg_[a-z0-9_]+\[' include/cartoongan.h | grep -oE 'cg_[a-z0-9_]+') |
        LC_ALL=C sort -u)
    [ -n "$want" ] && [ "$got" = "$want" ] ||
        note_failure "exported [$(echo "$got" | tr '\n' ' ')], expected the header's [$(echo "$want" | tr '\n' ' ')]"
    check "every exported symbol is versioned CARTOONGAN_0" \
        [ "$(awk '$2 != "A"' "$T/nm" | grep -vc '@@CARTOONGAN_0$')" -eq 0 ]
    check "the library has internal cg_ functions for this test to catch (cg_image_load)" \
        grep -q ' T cg_image_load$' <(nm "$STAGE$P/lib/libcartoongan.a" 2>/dev/null)
    check "soname libcartoongan.so.0" grep -q 'Library soname: \[libcartoongan.so.0\]' <(readelf -d "$so")
    check "no undefined symbols beyond its NEEDED libraries (ldd -r)" \
        bash -c "! ldd -r '$so' 2>&1 | grep -q 'undefined symbol'"
}

# pkg-config against the staged tree, the C example built with it and run, the Python
# example through ctypes, and the installed CLI on the same pictures: identical pixels.
test_examples() {
    export PKG_CONFIG_SYSROOT_DIR=$STAGE PKG_CONFIG_LIBDIR=$STAGE$P/lib/pkgconfig
    local flags
    flags=$(pkg-config --cflags --libs cartoongan) || { note_failure "pkg-config cartoongan"; return; }
    flags=$(echo $flags) # pkg-config ends it with a space
    [ "$flags" = "-I$STAGE$P/include -L$STAGE$P/lib -lcartoongan" ] || note_failure "pkg-config says '$flags'"
    check "pkg-config --modversion is $VERSION" [ "$(pkg-config --modversion cartoongan)" = "$VERSION" ]
    # shellcheck disable=SC2086
    cc -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$D/stylize" examples/stylize.c $flags 2>"$D/cc.err" ||
        { note_failure "examples/stylize.c does not build: $(head -c 300 "$D/cc.err")"; return; }
    check "the example links libcartoongan.so.0" grep -q 'Shared library: \[libcartoongan.so.0\]' <(readelf -d "$D/stylize")
    unset PKG_CONFIG_SYSROOT_DIR
    # and statically, with what Libs.private names (system paths: no sysroot for those)
    # shellcheck disable=SC2046
    cc -std=c11 -o "$D/stylize_static" examples/stylize.c -I"$STAGE$P/include" "$STAGE$P/lib/libcartoongan.a" \
        $(pkg-config --static --libs cartoongan | sed 's/-lcartoongan//') 2>"$D/cc.err" ||
        note_failure "examples/stylize.c does not link statically with Libs.private: $(head -c 300 "$D/cc.err")"
    unset PKG_CONFIG_LIBDIR
    python3 tests/png_ppm.py to-ppm "$DATA/plain.png" "$D/plain.ppm"
    python3 tests/png_ppm.py pattern 72 50 "$D/scene.ppm"
    python3 tests/png_ppm.py to-png "$D/scene.ppm" "$D/scene.png"
    local weights=$STAGE$P/share/cartoongan/weights name style
    for style in hayao light_paprika; do
        BIN=$STAGE$P/bin/cartoongan cg cartoonize --weights-dir "$weights" --styles "$style" \
            --skip-comparison --quiet --output-dir "$D/cli" "$DATA/plain.png" "$D/scene.png"
        expect_rc 0
        for name in plain scene; do
            python3 tests/png_ppm.py to-ppm "$D/cli/$style/$name.png" "$D/$name.cli.ppm"
            LD_LIBRARY_PATH=$STAGE$P/lib $TIMEOUT "$D/stylize" "$weights/$style.safetensors" \
                "$D/$name.ppm" "$D/$name.c.ppm" || note_failure "examples/stylize.c failed on $name ($style)"
            "$D/stylize_static" "$weights/$style.safetensors" "$D/$name.ppm" "$D/$name.static.ppm" ||
                note_failure "the static example failed on $name ($style)"
            LD_LIBRARY_PATH=$STAGE$P/lib $TIMEOUT python3 examples/stylize.py "$weights/$style.safetensors" \
                "$D/$name.ppm" "$D/$name.py.ppm" || note_failure "examples/stylize.py failed on $name ($style)"
            cmp -s "$D/$name.c.ppm" "$D/$name.cli.ppm" || note_failure "C example != CLI on $name ($style)"
            cmp -s "$D/$name.static.ppm" "$D/$name.cli.ppm" || note_failure "static C example != CLI on $name ($style)"
            cmp -s "$D/$name.py.ppm" "$D/$name.cli.ppm" || note_failure "Python example != CLI on $name ($style)"
            cmp -s "$D/$name.ppm" "$D/$name.cli.ppm" && note_failure "$name came out unchanged ($style)"
        done
    done
    # a JPEG through djpeg and back through cjpeg, as the README and the example's comment
    # suggest: the example takes djpeg's PPM and gives the CLI's pixels
    djpeg -pnm "$DATA/orient1.jpg" >"$D/photo.ppm" || note_failure "djpeg -pnm failed"
    LD_LIBRARY_PATH=$STAGE$P/lib $TIMEOUT "$D/stylize" "$weights/hayao.safetensors" "$D/photo.ppm" "$D/photo.c.ppm" ||
        note_failure "examples/stylize.c failed on djpeg's PPM"
    python3 tests/png_ppm.py to-png "$D/photo.ppm" "$D/photo.png"
    BIN=$STAGE$P/bin/cartoongan cg cartoonize --weights-dir "$weights" --styles hayao --skip-comparison \
        --quiet --output-dir "$D/cli" "$D/photo.png"
    expect_rc 0
    python3 tests/png_ppm.py to-ppm "$D/cli/hayao/photo.png" "$D/photo.cli.ppm"
    cmp -s "$D/photo.c.ppm" "$D/photo.cli.ppm" || note_failure "C example != CLI on djpeg's PPM"
    cjpeg "$D/photo.c.ppm" >"$D/cartoon.jpg" && [ "$(kind "$D/cartoon.jpg")" = jpeg ] ||
        note_failure "cjpeg did not make a JPEG of the example's output"
    # errors come back through cg_last_error
    LD_LIBRARY_PATH=$STAGE$P/lib "$D/stylize" "$D/nothere.safetensors" "$D/plain.ppm" "$D/x.ppm" 2>"$D/err" &&
        note_failure "the C example succeeded without weights"
    grep -q "nothere.safetensors" "$D/err" || note_failure "C example's error: $(cat "$D/err")"
    LD_LIBRARY_PATH=$STAGE$P/lib python3 examples/stylize.py "$D/nothere.safetensors" "$D/plain.ppm" \
        "$D/x.ppm" 2>"$D/err" && note_failure "the Python example succeeded without weights"
    grep -q "nothere.safetensors" "$D/err" || note_failure "Python example's error: $(cat "$D/err")"
}

# A man page per command `cartoongan --help` lists, each with every option of its --help.
test_man_pages() {
    local bin=$STAGE$P/bin/cartoongan man1=$STAGE$P/share/man/man1 cmds cmd opt
    cmds=$("$bin" --help | awk '/^commands:/ { on = 1; next } on && /^$/ { exit } on { print $1 }')
    [ "$(echo "$cmds" | wc -l)" -ge 7 ] || note_failure "commands in --help: [$cmds]"
    MANWIDTH=200 MANPAGER=cat man --nh --nj -l "$man1/cartoongan.1" >"$D/top.txt" 2>/dev/null
    for cmd in $cmds; do
        [ -f "$man1/cartoongan-$cmd.1" ] || { note_failure "no man page for '$cmd'"; continue; }
        grep -q "cartoongan-$cmd(1)" "$D/top.txt" || note_failure "cartoongan(1) does not refer to cartoongan-$cmd(1)"
        MANWIDTH=200 MANPAGER=cat man --nh --nj -l "$man1/cartoongan-$cmd.1" >"$D/$cmd.txt" 2>/dev/null
        grep -q "^SYNOPSIS" "$D/$cmd.txt" || note_failure "cartoongan-$cmd(1) has no SYNOPSIS"
        grep -q "cartoongan $cmd" "$D/$cmd.txt" || note_failure "cartoongan-$cmd(1) does not show its usage"
        for opt in $("$bin" "$cmd" --help | grep -oE '^  (-h, )?--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+'); do
            grep -qe "$opt" "$D/$cmd.txt" || note_failure "cartoongan-$cmd(1) lacks $opt"
        done
    done
    # found by name, as `man cartoongan-cartoonize` finds it once installed
    MANPATH=$STAGE$P/share/man MANWIDTH=200 MANPAGER=cat man --nh --nj cartoongan-cartoonize >"$D/byname.txt" 2>&1
    grep -q -- "--weights-dir" "$D/byname.txt" || note_failure "man cartoongan-cartoonize: $(head -c 200 "$D/byname.txt")"
    # the installed command's lookup, not the checkout's, is what the pages describe
    grep -q "$P/share/cartoongan/weights" "$D/cartoonize.txt" || note_failure "cartoongan-cartoonize(1) lacks $P/share/cartoongan/weights"
    grep -q "$ROOT" "$man1"/*.1 && note_failure "a man page names the checkout $ROOT"
}

test_uninstall() {
    mk uninstall DESTDIR="$STAGE" || return
    [ -z "$(tree "$STAGE")" ] || note_failure "left after uninstall: $(tree "$STAGE" | tr '\n' ' ')"
    check "share/cartoongan removed" [ ! -e "$STAGE$P/share/cartoongan" ]
}

# ---- the installed command's weights lookup (PREFIX=$T/p, no DESTDIR) ----

PFX=$T/p
run_inst() { # ENV-ASSIGNMENTS... -- ARGS: the installed command, without the test's CARTOONGAN_WEIGHTS
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    (cd "$T/elsewhere" && env -u CARTOONGAN_WEIGHTS -u XDG_DATA_HOME "${envs[@]}" $TIMEOUT "$PFX/bin/cartoongan" "$@") \
        >"$T/out" 2>"$T/err"
    rc=$?
}

test_lookup() {
    mk install PREFIX="$PFX" INSTALL_WEIGHTS=0 WEB_OUT="$T/noapp" || return
    grep -q "no browser app in $T/noapp to install ('make web' builds it" "$T/make.out" ||
        note_failure "install without the app does not say so: $(cat "$T/make.out")"
    mkdir -p "$T/elsewhere" "$T/home" "$T/xdg/cartoongan/weights" "$T/env"
    local sysw=$PFX/share/cartoongan/weights userw=$T/home/.local/share/cartoongan/weights
    check "PREFIX/share/cartoongan/weights made" [ -d "$sysw" ]
    # references: each style by --weights-dir
    run_inst HOME="$T/home" -- cartoonize --weights-dir "$W" --styles hayao,hosoda --skip-comparison \
        --quiet --output-dir "$T/ref" "$DATA/plain.png"
    expect_rc 0
    # nothing anywhere: the places in order, and the command that fetches the style
    run_inst HOME="$T/home" -- cartoonize --styles hayao --output-dir "$D/o" "$DATA/plain.png"
    expect_rc 1
    expect_err "cannot load style 'hayao': no hayao.safetensors (or hayao/ of .npy files) in $userw or $sysw"
    expect_err "hint: run 'cartoongan fetch-weights hayao' to download it into $userw"
    grep -q "make weights" "$T/err" && note_failure "the installed command talks of make weights"
    [ "$(wc -l <"$T/err")" -eq 2 ] || note_failure "missing style: not two lines: $(cat "$T/err")"
    # PREFIX/share/cartoongan/weights (what an administrator installs)
    ln -s "$W/hayao.safetensors" "$sysw/hayao.safetensors"
    run_inst HOME="$T/home" -- cartoonize --styles hayao --skip-comparison --quiet --output-dir "$D/sys" "$DATA/plain.png"
    expect_rc 0
    check "hayao from PREFIX/share" cmp -s "$D/sys/hayao/plain.png" "$T/ref/hayao/plain.png"
    # the user's folder comes first: ~/.local/share/..., or $XDG_DATA_HOME/... when set
    mkdir -p "$userw"
    ln -s "$W/hosoda.safetensors" "$userw/hayao.safetensors"
    run_inst HOME="$T/home" -- cartoonize --styles hayao --skip-comparison --quiet --output-dir "$D/user" "$DATA/plain.png"
    expect_rc 0
    check "~/.local/share before PREFIX/share" cmp -s "$D/user/hayao/plain.png" "$T/ref/hosoda/plain.png"
    run_inst HOME="$T/home" XDG_DATA_HOME="$T/xdg" -- cartoonize --styles hayao --skip-comparison --quiet \
        --output-dir "$D/xdg" "$DATA/plain.png"
    expect_rc 0
    check "\$XDG_DATA_HOME replaces ~/.local/share" cmp -s "$D/xdg/hayao/plain.png" "$T/ref/hayao/plain.png"
    run_inst HOME="$T/home" XDG_DATA_HOME=relative/path -- cartoonize --styles hayao --skip-comparison \
        --quiet --output-dir "$D/rel" "$DATA/plain.png"
    check "a relative XDG_DATA_HOME is ignored (the XDG specification)" \
        cmp -s "$D/rel/hayao/plain.png" "$T/ref/hosoda/plain.png"
    # $CARTOONGAN_WEIGHTS, and --weights-dir before it, are the only place looked in
    run_inst HOME="$T/home" CARTOONGAN_WEIGHTS="$T/env" -- cartoonize --styles hayao --output-dir "$D/env" "$DATA/plain.png"
    expect_rc 1
    expect_err "cannot load style 'hayao' from $T/env/hayao.safetensors: no such file"
    expect_err "hint: run 'cartoongan fetch-weights hayao' to download it into $T/env"
    run_inst HOME="$T/home" CARTOONGAN_WEIGHTS="$T/env" -- cartoonize --weights-dir "$sysw" --styles hayao \
        --skip-comparison --quiet --output-dir "$D/wd" "$DATA/plain.png"
    expect_rc 0
    expect_files "$D/wd" "hayao/plain.png"
    run_inst HOME="$T/home" -- cartoonize --weights-dir "$T/nowhere" --styles hayao --output-dir "$D/wd2" "$DATA/plain.png"
    expect_rc 1
    expect_err "weights directory $T/nowhere: no such file or directory"
    expect_err "'cartoongan fetch-weights --dest $T/nowhere hayao'"
    # a custom style is looked for in every place, and a typo names what each holds
    ln -s "$W/hayao.safetensors" "$sysw/mine.safetensors"
    run_inst HOME="$T/home" -- cartoonize --styles mine --skip-comparison --quiet --output-dir "$D/mine" "$DATA/plain.png"
    expect_rc 0
    run_inst HOME="$T/home" -- cartoonize --styles mien --output-dir "$D/mine" "$DATA/plain.png"
    expect_rc 2
    expect_err "unknown style 'mien': no mien.safetensors in $userw or $sysw ($userw: hayao; $sysw: hayao, mine)"
    # no inputs and no input_images/: the installed command has no sample photos to offer
    run_inst HOME="$T/home" -- cartoonize
    expect_rc 1
    expect_err "input_images: no such file or directory (give files, folders or URLs to cartoonize, or --input-dir DIR, e.g. 'cartoongan cartoonize photo.jpg')"
    grep -q "make" "$T/err" && note_failure "the installed cartoonize without inputs talks of make: $(cat "$T/err")"
    # --help tells the places
    run_inst HOME="$T/home" -- cartoonize --help
    expect_out "1.  \$XDG_DATA_HOME/cartoongan/weights (unset: ~/.local/share/cartoongan/weights)"
    expect_out "2.  $sysw"
    grep -q "$ROOT" "$T/out" && note_failure "the installed command's --help names the checkout"
    # export --checkpoint-dir writes to the user's folder by default (tested with a
    # missing checkpoint folder: the folder is made, the error is the checkpoint's)
    run_inst HOME="$T/home2" -- export --checkpoint-dir "$T/nockpt" --name x
    expect_rc 1
    check "export made the user's weights folder" [ -d "$T/home2/.local/share/cartoongan/weights" ]
}

# fetch-weights into the user's folder, from ../shared/weights, then cartoonize with no
# flag from another folder: the bytes `make` wrote, the same pictures.
test_fetch_local() {
    local userw=$T/home3/.local/share/cartoongan/weights
    run_inst HOME="$T/home3" -- fetch-weights --from "$SHARED" hayao light_paprika
    expect_rc 0
    expect_out "fetched 2 styles into $userw"
    expect_files "$userw" "hayao.safetensors
light_paprika.safetensors"
    check "hayao as make made it" cmp -s "$userw/hayao.safetensors" "$W/hayao.safetensors"
    check "light_paprika as make made it" cmp -s "$userw/light_paprika.safetensors" "$W/light_paprika.safetensors"
    run_inst HOME="$T/home3" -- cartoonize --styles hayao --skip-comparison --quiet --output-dir "$D/o" "$DATA/plain.png"
    expect_rc 0
    check "cartoonize after fetch-weights" cmp -s "$D/o/hayao/plain.png" "$T/ref/hayao/plain.png"
    # again: already there, unless --force
    run_inst HOME="$T/home3" -- fetch-weights --from "$SHARED" hayao
    expect_rc 0
    expect_out "hayao: already in $userw (--force fetches it again)"
    run_inst HOME="$T/home3" -- fetch-weights --from "$SHARED" --force light_paprika
    expect_rc 0
    # usage errors
    run_inst HOME="$T/home3" -- fetch-weights vangogh
    expect_rc 2
    expect_err "unknown style 'vangogh'"
    run_inst HOME="$T/home3" -- fetch-weights --base-url ftp://x hayao
    expect_rc 2
    # the digests fetch.c pins are sha256sum's of the release's files
    local sum
    sum=$(cd "$SHARED/cartoongan_light/light_paprika_ckpt" &&
        cat checkpoint generator.index generator.data-00000-of-00001 | sha256sum | cut -d' ' -f1)
    grep -q "\"light_paprika\", 1, \"3.7\", \"$sum\"" src/cli/fetch.c || note_failure "light_paprika's pinned digest is not $sum"
    # --help's sizes are what is downloaded and what is written, in MB (10^6 bytes)
    local full_dl light_dl full_st light_st
    full_dl=$(cat "$SHARED/cartoongan/hayao"/*.npy | wc -c | awk '{ printf "%.1f", $1 / 1e6 }')
    light_dl=$(cat "$SHARED/cartoongan_light/light_paprika_ckpt"/* | wc -c | awk '{ printf "%.1f", $1 / 1e6 }')
    full_st=$(wc -c <"$W/hayao.safetensors" | awk '{ printf "%.1f", $1 / 1e6 }')
    light_st=$(wc -c <"$W/light_paprika.safetensors" | awk '{ printf "%.1f", $1 / 1e6 }')
    run_inst -- fetch-weights --help
    tr -s ' \n' '  ' <"$T/out" >"$D/help.txt"
    grep -qF "paprika ($full_dl MB each to download, $full_st MB each once converted)" "$D/help.txt" ||
        note_failure "fetch-weights --help does not give the full styles as $full_dl MB to download, $full_st MB converted"
    grep -qF "light_paprika ($light_dl MB each to download, $light_st MB each once converted)" "$D/help.txt" ||
        note_failure "fetch-weights --help does not give the light styles as $light_dl MB to download, $light_st MB converted"
}

# Over HTTP from a local server laid out as the upstream repository (python3's http.server
# over a folder of links into ../shared): downloads, a damaged file, a missing one.
test_fetch_http() {
    local up=$T/up npy=style_transfer/cartoongan/pretrained_weights dest=$D/w
    mkdir -p "$up/$npy" "$up/bad/$npy/hayao"
    ln -s "$SHARED/cartoongan/hayao" "$up/$npy/hayao"
    ln -s "$SHARED/cartoongan_light/light_paprika_ckpt" "$up/light_paprika_ckpt"
    local f
    for f in "$SHARED"/cartoongan/hayao/*.npy; do ln -s "$f" "$up/bad/$npy/hayao/"; done
    rm "$up/bad/$npy/hayao/conv04_1.weight.npy"
    # one float changed: still a valid .npy of the right shape, so only the digest sees it
    python3 -c 'import sys; d = bytearray(open(sys.argv[1], "rb").read()); d[-1] ^= 1; open(sys.argv[2], "wb").write(d)' \
        "$SHARED/cartoongan/hayao/conv04_1.weight.npy" "$up/bad/$npy/hayao/conv04_1.weight.npy"
    python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$up" >"$T/server.log" 2>&1 &
    server=$!
    local port="" i
    for i in $(seq 1 100); do
        port=$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$T/server.log")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { note_failure "the local HTTP server did not start: $(cat "$T/server.log")"; return; }
    run_inst HOME="$T/home4" -- fetch-weights --dest "$dest" --base-url "http://127.0.0.1:$port" hayao light_paprika
    expect_rc 0
    expect_out "hayao: downloading 44.5 MB from http://127.0.0.1:$port"
    expect_files "$dest" "hayao.safetensors
light_paprika.safetensors"
    check "downloaded hayao as make made it" cmp -s "$dest/hayao.safetensors" "$W/hayao.safetensors"
    check "downloaded light_paprika as make made it" cmp -s "$dest/light_paprika.safetensors" "$W/light_paprika.safetensors"
    # one changed byte: refused, and nothing left behind (no file, no temporary folder, not
    # even the --dest folder it made)
    run_inst HOME="$T/home4" -- fetch-weights --dest "$D/w2" --base-url "http://127.0.0.1:$port/bad" hayao
    expect_rc 1
    expect_err "hayao: the files downloaded to are not the release's (SHA-256 "
    expect_err "expected ac4dff7c5407ae3a1fedd1ee82ab21e1c534aa58e191e77b7e614feebe1a8c62"
    [ ! -e "$D/w2" ] || note_failure "left after a refused download: $D/w2 $(ls -A "$D/w2")"
    # a file the server does not have
    run_inst HOME="$T/home4" -- fetch-weights --dest "$D/w2" --base-url "http://127.0.0.1:$port" shinkai
    expect_rc 1
    expect_err "shinkai: http://127.0.0.1:$port/$npy/shinkai/conv01_1.bias.npy: HTTP 404"
    [ ! -e "$D/w2" ] || note_failure "left after a 404: $D/w2 $(ls -A "$D/w2")"
    # into a --dest that exists: it stays, empty
    mkdir "$D/w3"
    run_inst HOME="$T/home4" -- fetch-weights --dest "$D/w3" --base-url "http://127.0.0.1:$port" shinkai
    expect_rc 1
    [ -d "$D/w3" ] && [ -z "$(ls -A "$D/w3")" ] || note_failure "an existing --dest after a 404: $(ls -A "$D/w3")"
    # a failed fetch into folders that were not there (the user's default one, a --dest
    # deeper down) leaves none of them behind, as --help says
    mkdir -p "$T/home5"
    run_inst HOME="$T/home5" -- fetch-weights --base-url "http://127.0.0.1:$port" shinkai
    expect_rc 1
    expect_err "HTTP 404"
    [ -z "$(ls -A "$T/home5")" ] || note_failure "left in HOME after a failed fetch: $(cd "$T/home5" && find . | tr '\n' ' ')"
    run_inst HOME="$T/home5" -- fetch-weights --dest "$D/new/sub/w" --from "$T/nowhere" hayao
    expect_rc 1
    check "a failed --from fetch made no --dest" [ ! -e "$D/new" ]
    kill "$server" 2>/dev/null
    wait "$server" 2>/dev/null
    server=""
}

# The installed `serve`: its root is PREFIX/share/cartoongan/web (named by --help and by
# the error when the app was not installed), and the page's weights/ requests are answered
# from the folders the styles are looked up in.
test_serve_installed() {
    local web=$PFX/share/cartoongan/web userw=$T/home3/.local/share/cartoongan/weights
    run_inst HOME="$T/home3" -- serve --help
    expect_rc 0
    expect_out "--root DIR       folder to serve (default: $web)"
    grep -q "build/web" "$T/out" && note_failure "the installed serve --help names build/web"
    # installed without the app (test_lookup)
    run_inst HOME="$T/home3" -- serve --port 0
    expect_rc 1
    expect_err "cartoongan serve: $web: not a folder (this cartoongan was installed without the browser app: in the source tree, 'make web' builds it and 'make install' then puts it there; or give --root DIR)"
    mk install PREFIX="$PFX" INSTALL_WEIGHTS=0 WEB_OUT="$APP" || return
    check "no weights/ installed with the app" [ ! -e "$web/weights" ]
    # a file of the user's own folder only, fp16 named
    echo "fp16 stand-in" >"$userw/light_paprika.f16.safetensors"
    (cd "$T/elsewhere" && env -u CARTOONGAN_WEIGHTS -u XDG_DATA_HOME HOME="$T/home3" \
        "$PFX/bin/cartoongan" serve --port 0 --quiet >"$D/serve.out" 2>"$D/serve.err") &
    server=$!
    local port="" i
    for i in $(seq 1 100); do
        port=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$D/serve.out")
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { note_failure "the installed serve did not start: $(cat "$D/serve.out" "$D/serve.err")"; return; }
    grep -q "serving $web at" "$D/serve.out" || note_failure "serve: $(cat "$D/serve.out")"
    local u=http://127.0.0.1:$port
    curl -s -o "$D/index.html" "$u/" && cmp -s "$D/index.html" "$APP/index.html" ||
        note_failure "GET / is not the installed index.html"
    curl -s -o "$D/hayao" "$u/weights/hayao.safetensors" && cmp -s "$D/hayao" "$userw/hayao.safetensors" ||
        note_failure "GET /weights/hayao.safetensors is not the user's fetched hayao"
    curl -s -o "$D/lp16" "$u/weights/light_paprika.f16.safetensors" && cmp -s "$D/lp16" "$userw/light_paprika.f16.safetensors" ||
        note_failure "GET /weights/light_paprika.f16.safetensors is not the user's"
    local path code
    for path in /weights/shinkai.safetensors /weights/hayao /weights/hayao.npy /weights/../weights/hayao.safetensors \
        /weights/%2e%2e/hayao.safetensors /weights/x.y.safetensors /weights/hayao/conv01_1.weight.npy /hayao.safetensors; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --path-as-is "$u$path")
        [ "$code" = 404 ] || [ "$code" = 400 ] || note_failure "GET $path: HTTP $code"
    done
    kill "$server" 2>/dev/null
    wait "$server" 2>/dev/null
    server=""
    rm -f "$userw/light_paprika.f16.safetensors"
}

test_uninstall_prefix() {
    rm -f "$PFX/share/cartoongan/weights/hayao.safetensors"
    mk uninstall PREFIX="$PFX" || return
    # the one file the test put there itself stays, and keeps its folder
    [ "$(tree "$PFX")" = "share/cartoongan/weights/mine.safetensors" ] ||
        note_failure "left after uninstall: $(tree "$PFX" | tr '\n' ' ')"
}

# ---- the Debian package (built, not installed: that needs root and changes the system) ----

test_deb() {
    mk deb || return
    local deb
    deb=$(ls "$BUILD"/cartoongan_"$VERSION"_*.deb 2>/dev/null)
    [ -f "$deb" ] || { note_failure "make deb made no $BUILD/cartoongan_${VERSION}_*.deb"; return; }
    grep -q "^E:" "$T/make.out" && note_failure "lintian errors: $(grep '^E:' "$T/make.out")"
    dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./||' | grep -v '/$' | LC_ALL=C sort >"$D/files"
    local ma
    ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
    for f in usr/bin/cartoongan usr/include/cartoongan.h "usr/lib/$ma/libcartoongan.so.$VERSION" \
        "usr/lib/$ma/libcartoongan.so.0" "usr/lib/$ma/pkgconfig/cartoongan.pc" \
        usr/share/man/man1/cartoongan-cartoonize.1.gz usr/share/doc/cartoongan/copyright \
        usr/share/doc/cartoongan/changelog.gz; do
        grep -qx "$f" "$D/files" || note_failure "the package lacks $f"
    done
    grep -q "\.safetensors$" "$D/files" && note_failure "the package holds weights"
    local depends
    depends=$(dpkg-deb -f "$deb" Depends)
    for f in "libc6 (>=" "libpng16-16" "libavcodec" "libcurl"; do
        case $depends in *"$f"*) ;; *) note_failure "Depends lacks $f: $depends" ;; esac
    done
    dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./shlibs >"$D/shlibs" 2>/dev/null
    check "shlibs names libcartoongan 0" grep -qx "libcartoongan 0 cartoongan (>= $VERSION)" "$D/shlibs"
    # the packaged command looks in /usr/share/cartoongan/weights
    dpkg-deb -x "$deb" "$D/x"
    grep -q "/usr/share/cartoongan/weights" <("$D/x/usr/bin/cartoongan" cartoonize --help) ||
        note_failure "the packaged command does not look in /usr/share/cartoongan/weights"
    grep -q "(default: /usr/share/cartoongan/web)" <("$D/x/usr/bin/cartoongan" serve --help) ||
        note_failure "the packaged serve does not serve /usr/share/cartoongan/web"
    # the browser app, built for it, when emscripten is here (tools/install_deps.sh has it)
    if command -v "${EMCC:-emcc}" >/dev/null; then
        for f in index.html app.js worker.js cartoongan_st.wasm cartoongan_mt.wasm cartoongan_mt.worker.js; do
            grep -qx "usr/share/cartoongan/web/$f" "$D/files" || note_failure "the package lacks usr/share/cartoongan/web/$f"
        done
        dpkg-deb -f "$deb" Description | grep -q "cartoongan serve" ||
            note_failure "the package's description does not mention the app"
    else
        grep -q "^usr/share/cartoongan/web/" "$D/files" && note_failure "the package holds an app without emscripten"
        grep -q "the package will not hold the browser app" "$T/make.out" || note_failure "make deb does not say the app is left out"
    fi
}

for t in test_layout test_symbols test_examples test_man_pages test_uninstall test_lookup \
    test_fetch_local test_serve_installed test_fetch_http test_uninstall_prefix test_deb; do
    run "$t"
done

echo "test_install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
