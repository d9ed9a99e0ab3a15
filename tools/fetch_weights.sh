#!/bin/sh
# fetch_weights.sh STYLE SHARED_DIR OUT.safetensors
# Sets up one style's generator weights for `make`: converts the upstream release's .npy
# files to one .safetensors file with `cartoongan export` (which checks every tensor's name
# and shape). The .npy files come from SHARED_DIR/STYLE when present, otherwise they are
# downloaded from the upstream repository into a temporary folder first.
set -eu
style=$1 shared=$2 out=$3
bin=${CARTOONGAN_BIN:-build/cartoongan}
upstream=https://raw.githubusercontent.com/mnicnc404/CartoonGan-tensorflow/master/style_transfer/cartoongan/pretrained_weights

# The 94 tensors of the generator, as the release names them.
tensor_names() {
    for l in 01_1 02_1 02_2 03_1 03_2 04_1 04_2 05_1 05_2 06_1 06_2 07_1 07_2 08_1 08_2 \
             09_1 09_2 10_1 10_2 11_1 11_2; do
        echo "conv$l.weight"; echo "conv$l.bias"
    done
    for l in 01_1 01_2 02_1 02_2 03_1; do echo "deconv$l.weight"; echo "deconv$l.bias"; done
    for l in 01_1 02_1 03_1 04_1 04_2 05_1 05_2 06_1 06_2 07_1 07_2 08_1 08_2 09_1 09_2 \
             10_1 10_2 11_1 11_2 12_1 13_1; do
        echo "in$l.scale"; echo "in$l.shift"
    done
}

src="$shared/$style"
if [ ! -f "$src/conv01_1.weight.npy" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "downloading the $style weights (44.5 MB) from the upstream release..." >&2
    for name in $(tensor_names); do
        curl -fsSL --retry 3 -o "$tmp/$name.npy" "$upstream/$style/$name.npy" || {
            echo "fetch_weights: cannot download $upstream/$style/$name.npy" >&2
            exit 1
        }
    done
    src=$tmp
fi
mkdir -p "$(dirname "$out")"
"$bin" export --force "$src" "$out"
