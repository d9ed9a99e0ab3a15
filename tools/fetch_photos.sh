#!/bin/sh
# fetch_photos.sh SHARED_DIR OUT_DIR
# Sets up the seed project's two sample photos (temple.jpg, origami.jpg) in OUT_DIR for
# `make`, so that `build/cartoongan cartoonize` with no arguments (its --input-dir default
# is input_images) has something to cartoonize, as the seed's cartoonize.py did. They are
# copied from SHARED_DIR when present, otherwise downloaded from the upstream repository
# (mnicnc404/CartoonGan-tensorflow, Apache-2.0, Copyright 2019 Meng Lee and Ching Ning
# Chen; pinned to a commit), and either way checked against their SHA-256. They are
# gathered in a temporary folder beside OUT_DIR and renamed to it at the end, so OUT_DIR
# appears whole or not at all (make then tries again). 586 KB together, so not committed.
set -eu
shared=$1 out=$2
upstream=https://raw.githubusercontent.com/mnicnc404/CartoonGan-tensorflow/2f26a525f8b604b8e98fb84ebad0af5aef727944/input_images
sums='f608de7d1cf1116090106f2820dc0fe9ca6de8e5613da9d73ea6a60d4b5d58a7  temple.jpg
acee0c7d18a4f778ebaee46026923dfbda029bfff8dd07fda25e5b90245829fd  origami.jpg'

if [ -e "$out" ]; then
    echo "fetch_photos: $out already exists; leaving it as it is" >&2
    exit 0
fi
tmp="$(dirname "$out")/.$(basename "$out").tmp-$$"
mkdir -p "$(dirname "$out")"
mkdir "$tmp" # mkdir, not mktemp: the folder gets the usual permissions
trap 'rm -rf "$tmp"' EXIT
for name in temple.jpg origami.jpg; do
    if [ -f "$shared/$name" ]; then
        cat "$shared/$name" >"$tmp/$name" # cat, not cp: writable, like any file of the user's
    else
        echo "downloading the sample photo $name from the upstream repository..." >&2
        curl -fsSL --retry 3 -o "$tmp/$name" "$upstream/$name" || {
            echo "fetch_photos: cannot download $upstream/$name" >&2
            exit 1
        }
    fi
done
(cd "$tmp" && printf '%s\n' "$sums" | sha256sum --check --quiet) || {
    echo "fetch_photos: the sample photos are not the seed project's (SHA-256 differs)" >&2
    exit 1
}
mv -T "$tmp" "$out"
trap - EXIT
echo "set up the sample photos in $out" >&2
