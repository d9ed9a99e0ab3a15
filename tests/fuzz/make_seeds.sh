#!/bin/sh
# make_seeds.sh: regenerates the fuzz targets' seed corpora in tests/fuzz/corpus/<target>/:
# the small sample images of tests/data/images and GIFs of tests/data/media, one small
# photo from ../shared/data, and crafted files that reach paths the samples do not
# (progressive and restart-marker JPEG, text chunks and Adam7 in PNG, lossless and animated
# WebP, HEIC grids, thumbnails and several images in one file, .npy v2/v3 headers, the
# real weights' safetensors header, the light checkpoint's index and small crafted
# TensorFlow checkpoints, typical command lines, URLs for the server). Seeds stay
# small (< 20 KB) so a fuzz run's inputs stay small too.
# Needs ImageMagick 6 (`convert`), python3 (standard library only) and, for the HEIC/AVIF
# seeds beyond the fixtures, heif-enc (libheif-examples); deterministic.
# Run from anywhere: tests/fuzz/make_seeds.sh
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
c="$root/tests/fuzz/corpus"
img="$root/tests/data/images"
shared="$root/../shared/data"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$c/fuzz_jpeg" "$c/fuzz_png" "$c/fuzz_webp" "$c/fuzz_heif" "$c/fuzz_npy" "$c/fuzz_safetensors" "$c/fuzz_cli" "$c/fuzz_gif" "$c/fuzz_serve"

# a small colourful picture to encode in many ways
convert -size 24x16 gradient:red-blue \( -size 24x16 gradient:lime-black -rotate 90 -resize 24x16! \) \
    -compose multiply -composite -strip "PNG24:$tmp/pic.png"

# ---- JPEG ----
cp "$img"/*.jpg "$c/fuzz_jpeg/"
rm -f "$c/fuzz_jpeg/notimage.jpg"
if [ -f "$shared/cartoon/anime_smooth/2.jpg" ]; then
    cp "$shared/cartoon/anime_smooth/2.jpg" "$c/fuzz_jpeg/shared_anime.jpg" # 12 KB, a real encoder's output
    convert "$shared/cartoon/anime_smooth/2.jpg" -resize 64x64 "$c/fuzz_jpeg/shared_anime_small.jpg"
fi
convert "$tmp/pic.png" -interlace JPEG -quality 80 "$c/fuzz_jpeg/progressive.jpg"
convert "$tmp/pic.png" -sampling-factor 2x2 -quality 70 "$c/fuzz_jpeg/420.jpg"
convert "$tmp/pic.png" -define jpeg:restart-interval=1 "$c/fuzz_jpeg/restart.jpg"
convert "$tmp/pic.png" -colorspace gray -interlace JPEG "$c/fuzz_jpeg/gray_progressive.jpg"
convert "$tmp/pic.png" -colorspace cmyk -interlace JPEG "$c/fuzz_jpeg/cmyk_progressive.jpg"

# ---- PNG (no date chunks, so reruns give the same files) ----
png() { convert -define png:exclude-chunk=date,time "$@"; }
for f in "$img"/*.png; do [ -s "$f" ] && cp "$f" "$c/fuzz_png/"; done
png "$tmp/pic.png" -set comment "a comment" -define png:compression-level=9 "PNG24:$c/fuzz_png/text.png"
png "$tmp/pic.png" -depth 16 -interlace PNG "PNG64:$c/fuzz_png/rgb16_adam7.png"
png "$tmp/pic.png" -colors 5 -interlace PNG "PNG8:$c/fuzz_png/palette_adam7.png"
png "$tmp/pic.png" -colorspace gray -depth 2 "$c/fuzz_png/gray2.png"
png "$tmp/pic.png" -alpha set -channel A -fx 'i/w' +channel "PNG32:$c/fuzz_png/alpha_ramp.png"

# ---- WebP ----
cp "$img"/*.webp "$c/fuzz_webp/"
convert "$tmp/pic.png" -define webp:lossless=true "$c/fuzz_webp/lossless.webp"
convert "$tmp/pic.png" -alpha set -channel A -fx 'j/h' +channel -quality 50 "$c/fuzz_webp/lossy_alpha.webp"
convert "$tmp/pic.png" -alpha set -channel A -fx 'j/h' +channel -define webp:lossless=true "$c/fuzz_webp/lossless_alpha.webp"
convert -delay 10 "$tmp/pic.png" \( "$tmp/pic.png" -negate \) -loop 0 "$c/fuzz_webp/animated.webp" 2>/dev/null || true

# ---- HEIC / AVIF: the fixtures (tools/make_heif_fixtures.c: irot, imir, EXIF, 10-bit,
# alpha, premultiplied alpha), then what libheif's own tool writes that they do not have:
# an odd size (a grid around one padded tile, with clap), a thumbnail, two top-level
# images, lossless 4:4:4 ----
cp "$img"/*.heic "$img"/*.avif "$c/fuzz_heif/"
if command -v heif-enc >/dev/null; then
    small="$root/tests/data/model/input_37x29.png"
    heif-enc -q 50 -o "$c/fuzz_heif/grid_clap.heic" "$small" >/dev/null
    heif-enc -q 50 -o "$c/fuzz_heif/odd_size.avif" "$small" >/dev/null
    heif-enc -q 50 -t 16 -o "$c/fuzz_heif/thumbnail.heic" "$small" >/dev/null
    heif-enc -q 50 -o "$c/fuzz_heif/two_images.heic" "$img/plain.png" "$small" >/dev/null
    heif-enc -L -p chroma=444 -o "$c/fuzz_heif/lossless444.heic" "$img/plain.png" >/dev/null
fi

# ---- GIF: the small samples of tests/data/media (many.gif, 30 KB, is left out) ----
for f in anim dispose_background dispose_none dispose_previous empty huge interlaced offscreen \
    still transparent truncated; do
    cp "$root/tests/data/media/$f.gif" "$c/fuzz_gif/"
done

# ---- animated WebP: the hunt file, and what test_webp_anim crafts with libwebpmux
# (offsets, blending, disposal, a bgcolor) and writes with cg_webp_anim_writer (RGB and
# RGBA, a repeated frame); the test program must be built (TEST_WEBP_ANIM, default
# build/tests/test_webp_anim) ----
mkdir -p "$c/fuzz_webp_anim"
cp "$root/tests/data/media/webp_animated_2frames.webp" "$c/fuzz_webp_anim/"
"${TEST_WEBP_ANIM:-$root/build/tests/test_webp_anim}" seeds "$c/fuzz_webp_anim" >/dev/null

# ---- TensorFlow checkpoints, as [u32 index length][index][data]: what test_tfckpt's table
# writer crafts (layouts, a double, slices, Snappy, overlap; the test program must be
# built: TEST_TFCKPT, default build/tests/test_tfckpt), and the light generator's real
# index (15 KB) with no data, which the target replaces by 4 MiB of zeros ----
mkdir -p "$c/fuzz_tfckpt"
"${TEST_TFCKPT:-$root/build/tests/test_tfckpt}" seeds "$c/fuzz_tfckpt"
index="$root/weights/ckpt/light_shinkai_ckpt/generator.index"
if [ -f "$index" ]; then
    python3 -c 'import struct, sys; d = open(sys.argv[1], "rb").read(); sys.stdout.buffer.write(struct.pack("<I", len(d)) + d)' \
        "$index" >"$c/fuzz_tfckpt/light_shinkai_index"
fi

# ---- .npy, .safetensors, command lines: crafted by python ----
cp "$root"/tests/data/ops/conv3_b.npy "$root"/tests/data/ops/instnorm_scale.npy "$c/fuzz_npy/"
python3 - "$c" "$root/weights/hayao.safetensors" <<'PY'
import struct, sys, os
c, weights = sys.argv[1], sys.argv[2]

def npy(version, header, data):
    header = header + ' ' * ((64 - (len(header) + 13) % 64) % 64) + '\n'
    if version == 1:
        pre = b'\x93NUMPY\x01\x00' + struct.pack('<H', len(header))
    else:
        pre = b'\x93NUMPY' + bytes([version, 0]) + struct.pack('<I', len(header))
    return pre + header.encode() + data

floats = struct.pack('<6f', 0, 1, -2, 3.5, 1e-9, 1e9)
seeds = {
    'v1_2x3.npy': npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", floats),
    'v2_6.npy': npy(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", floats),
    'v3_1x1x6.npy': npy(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 6), }", floats),
    'scalar.npy': npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", floats[:4]),
    'empty.npy': npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }", b''),
    'f8.npy': npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", floats),
    'fortran.npy': npy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", floats),
}
for name, data in seeds.items():
    open(os.path.join(c, 'fuzz_npy', name), 'wb').write(data)

# safetensors: the real header (names, shapes, offsets of all 94 tensors), without the data
st = os.path.join(c, 'fuzz_safetensors')
if os.path.exists(weights):
    with open(weights, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        open(os.path.join(st, 'generator_header.safetensors'), 'wb').write(struct.pack('<Q', n) + f.read(n))
def st_file(header, data=b''):
    h = header.encode()
    return struct.pack('<Q', len(h)) + h + data
open(os.path.join(st, 'one_tensor.safetensors'), 'wb').write(st_file(
    '{"__metadata__":{"format":"pt"},"conv01_1.bias":{"dtype":"F32","shape":[64],"data_offsets":[0,256]}}', bytes(256)))
open(os.path.join(st, 'empty.safetensors'), 'wb').write(st_file('{}'))
open(os.path.join(st, 'metadata.safetensors'), 'wb').write(st_file(
    '{"__metadata__":{"a":[1,2,{"b":null}],"c":"d\\"e","f":-1.5e3,"g":true}}'))

cli = [
    ['--styles', 'shinkai', 'hayao', 'in.jpg'],
    ['--styles=hayao,hosoda', '--all-styles', '--input-dir', 'x', '--output-dir=y'],
    ['--max-height', '32', '--keep-original-size', '--max-pixels=1000', '--threads', '2'],
    ['--comparison-view', 'grid', '--skip-comparison', '--overwrite', '--quiet', '--', '-a.png'],
    ['--weights-dir', 'w', '--help'],
    ['--max-height=0'],
    ['--styles'],
    ['--threads', '99999999999999999999'],
]
for i, args in enumerate(cli):
    open(os.path.join(c, 'fuzz_cli', 'args%d' % i), 'wb').write(b'\0'.join(a.encode() for a in args))

urls = {'root': '/', 'index': '/index.html', 'wasm': '/cartoongan.wasm', 'query': '/js/app.js?x=1',
        'space': '/a%20b/c.png', 'dotdot': '/../etc/passwd', 'enc_dotdot': '/%2e%2e/etc/passwd',
        'hidden': '/a/.hidden', 'double': '/a//b', 'nul': '/%00x', 'backslash': '/a\\b'}
for name, url in urls.items():
    open(os.path.join(c, 'fuzz_serve', name), 'w').write(url)
PY
ls "$c"/* | wc -l
