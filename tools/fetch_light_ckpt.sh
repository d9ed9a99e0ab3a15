#!/bin/sh
# fetch_light_ckpt.sh STYLE SHARED_DIR OUT_DIR
# Sets up one of the seed project's light-generator checkpoints (STYLE light_shinkai or
# light_paprika) for `make`: the TensorFlow 2 checkpoint folder STYLE_ckpt/ (checkpoint,
# generator.index, generator.data-00000-of-00001; 3.6 MB) is copied from
# SHARED_DIR/STYLE_ckpt when present, otherwise downloaded from the upstream repository
# (mnicnc404/CartoonGan-tensorflow, Apache-2.0, Copyright 2019 Meng Lee and Ching Ning
# Chen; pinned to a commit), and either way checked against its SHA-256. make then converts
# it with `cartoongan export OUT_DIR weights/STYLE.safetensors`, and keeps the folder for
# tests/test_tfckpt.c. The files are gathered in a temporary folder beside OUT_DIR and
# renamed to it at the end, so OUT_DIR appears whole or not at all.
set -eu
style=$1 shared=$2 out=$3
upstream=https://raw.githubusercontent.com/mnicnc404/CartoonGan-tensorflow/2f26a525f8b604b8e98fb84ebad0af5aef727944
case $style in
light_shinkai)
    sums='935c4b2e9941a82485693a00a8b51fefc9c4383aac600eae789a8ca6bbde70a1  checkpoint
ea917f4e868555e4d74d3cae56403bc8ce95acb71497727717ab7569099934ed  generator.data-00000-of-00001
11e76dda7659b0155edbc923cf22101d35b54ca762ead7e98cb98acfba291e04  generator.index' ;;
light_paprika)
    sums='935c4b2e9941a82485693a00a8b51fefc9c4383aac600eae789a8ca6bbde70a1  checkpoint
044774f6ba811cd738a2b73ea65d71cdbc3756df68117b4a1c98cc18dceedceb  generator.data-00000-of-00001
954d2b57795f9c6cd9b31497b36e494c90e236584e08dbd084f28bb4d39013c1  generator.index' ;;
*)
    echo "fetch_light_ckpt: unknown style '$style' (light_shinkai or light_paprika)" >&2
    exit 2 ;;
esac

if [ -e "$out" ]; then
    echo "fetch_light_ckpt: $out already exists; leaving it as it is" >&2
    exit 0
fi
src="$shared/${style}_ckpt"
tmp="$(dirname "$out")/.$(basename "$out").tmp-$$"
mkdir -p "$(dirname "$out")"
mkdir "$tmp"
trap 'rm -rf "$tmp"' EXIT
[ -f "$src/generator.index" ] || echo "downloading the $style checkpoint (3.6 MB) from the upstream repository..." >&2
for name in checkpoint generator.index generator.data-00000-of-00001; do
    if [ -f "$src/generator.index" ]; then
        cat "$src/$name" >"$tmp/$name" # cat, not cp: writable, like any file of the user's
    else
        curl -fsSL --retry 3 -o "$tmp/$name" "$upstream/${style}_ckpt/$name" || {
            echo "fetch_light_ckpt: cannot download $upstream/${style}_ckpt/$name" >&2
            exit 1
        }
    fi
done
(cd "$tmp" && printf '%s\n' "$sums" | sha256sum --check --quiet) || {
    echo "fetch_light_ckpt: the $style checkpoint is not the seed project's (SHA-256 differs)" >&2
    exit 1
}
mv -T "$tmp" "$out"
trap - EXIT
echo "set up the $style checkpoint in $out" >&2
