#!/bin/sh
# make_test_images.sh: regenerates the small sample and malformed images in
# tests/data/images/ that tests/test_image.c decodes. Needs ImageMagick 6 (`convert`) built
# with JPEG, PNG and WebP support, and python3 (standard library only) for the crafted
# headers and EXIF blocks that ImageMagick cannot write on demand.
#
# Every picture's pixel values are chosen so the test can check them exactly (PNG, lossless
# WebP) or within a tolerance (JPEG); keep these recipes and the expectations in
# tests/test_image.c in step. Run from anywhere: tools/make_test_images.sh
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/tests/data/images"
mkdir -p "$out"
cd "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# -strip drops timestamps and other chunks so reruns give identical, minimal files.
im() { convert "$@"; }

# quad: a 48x32 picture with four solid 24x16 quadrants (red, lime / blue, white). It is
# not symmetric under any flip or rotation, so the test can tell all 8 EXIF orientations
# apart by the corner colours and the size.
im \( -size 24x16 xc:red xc:lime +append \) \( -size 24x16 xc:blue xc:white +append \) \
   -append -strip "PNG24:$tmp/quad.png"

# plain: 17x11 smooth ramps that vary along both axes (odd sides exercise partial JPEG
# blocks and Adam7 passes; a column or row mix-up changes pixels).
im -size 17x11 xc: -channel R -fx 'i/w' -channel G -fx 'j/h' -channel B -fx '(w-i)/w/2+j/h/2' \
   +channel -strip "PNG24:$tmp/plain_src.png"
im "$tmp/plain_src.png" -strip PNG24:plain.png
im "$tmp/plain_src.png" -strip -quality 95 -sampling-factor 1x1 plain.jpg
im "$tmp/plain_src.png" -strip -define webp:lossless=false -quality 95 plain.webp
im "$tmp/plain_src.png" -strip -interlace PNG PNG24:interlaced.png

# Gray, 8-bit, four known levels in a row: 10, 100, 200, 255.
im -size 1x1 xc:'rgb(10,10,10)' xc:'rgb(100,100,100)' xc:'rgb(200,200,200)' \
   xc:'rgb(255,255,255)' +append -strip -define png:color-type=0 -define png:bit-depth=8 gray.png
# Gray, 1-bit: black, white, white, black.
im -size 1x1 xc:black xc:white xc:white xc:black +append -strip \
   -define png:color-type=0 -define png:bit-depth=1 gray1.png
# Gray + alpha: (gray 50, opaque), (gray 0, transparent), (gray 0, alpha ~50%), (200, opaque).
im -size 1x1 xc:'rgba(50,50,50,1)' xc:'rgba(0,0,0,0)' xc:'rgba(0,0,0,0.5)' \
   xc:'rgba(200,200,200,1)' +append -strip -define png:color-type=4 -define png:bit-depth=8 \
   gray_alpha.png
# Palette without transparency: red, lime, blue, rgb(10,20,30).
im -size 1x1 xc:red xc:lime xc:blue xc:'rgb(10,20,30)' +append -strip PNG8:palette.png
# Palette with tRNS: red, transparent, blue, rgb(10,20,30).
im -size 1x1 xc:red xc:'rgba(0,255,0,0)' xc:blue xc:'rgb(10,20,30)' +append -strip \
   PNG8:palette_trns.png
# RGBA 8-bit: opaque red, transparent, 50% black, opaque blue.
im -size 1x1 xc:'rgba(255,0,0,1)' xc:'rgba(0,255,0,0)' xc:'rgba(0,0,0,0.5)' \
   xc:'rgba(0,0,255,1)' +append -strip PNG32:rgba.png
# RGB 16-bit: values whose rounding (not truncation) to 8 bits is checked.
im -size 1x1 xc:'#ffff00000000' xc:'#12f0567880ff' xc:'#000000000000' +append -strip \
   -depth 16 PNG48:rgb16.png
# RGBA 16-bit: opaque 16-bit red, transparent.
im -size 1x1 xc:'rgba(255,0,0,1)' xc:'rgba(0,0,255,0)' +append -strip -depth 16 PNG64:rgba16.png
# WebP with alpha, lossless so values are exact: same pixels as rgba.png.
im rgba.png -strip -define webp:lossless=true -define webp:exact=true rgba.webp

# JPEG gray (one component) and CMYK (four components, Adobe marker, inverted as
# Photoshop writes it) made from the quadrant picture.
im "$tmp/quad.png" -strip -colorspace Gray -quality 95 gray.jpg
im "$tmp/quad.png" -strip -colorspace CMYK -quality 95 -sampling-factor 1x1 cmyk.jpg

# EXIF orientations 1..8: the stored pixels are the upright quad transformed by the inverse
# of what the tag says, so every file displays as the upright quad.
set -- "" "-flop" "-rotate 180" "-flip" "-transpose" "-rotate 270" "-transverse" "-rotate 90"
n=1
for op in "$@"; do
    # shellcheck disable=SC2086 # $op is one or two words on purpose
    im "$tmp/quad.png" $op -strip -quality 95 -sampling-factor 1x1 "$tmp/orient$n.jpg"
    n=$((n + 1))
done
im "$tmp/quad.png" -rotate 270 -strip -define webp:lossless=true "$tmp/orient6_raw.webp"
im "$tmp/plain_src.png" -strip -define webp:lossless=true "$tmp/plain_lossless.webp"
: >empty.png
printf 'hello, this is a text file and not a picture\n' >notimage.jpg

TMP="$tmp" python3 - <<'EOF'
import os, struct, zlib
tmp = os.environ["TMP"]

def rd(p):
    with open(p, "rb") as f:
        return f.read()

def wr(p, b):
    with open(p, "wb") as f:
        f.write(b)

def exif_app1(orientation, big_endian):
    # Minimal TIFF block: IFD0 with one entry, Orientation (0x0112, SHORT, 1 value).
    e = ">" if big_endian else "<"
    tiff = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    tiff += struct.pack(e + "H", 1)
    tiff += struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff += struct.pack(e + "I", 0)
    return b"Exif\0\0" + tiff

# orientN.jpg: the EXIF APP1 segment goes right after SOI; odd ones are little-endian.
for n in range(1, 9):
    j = rd(f"{tmp}/orient{n}.jpg")
    assert j[:2] == b"\xff\xd8"
    payload = exif_app1(n, n % 2 == 0)
    seg = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    wr(f"orient{n}.jpg", j[:2] + seg + j[2:])

def jpeg_sof(j):
    i = 2
    while i + 4 <= len(j):
        assert j[i] == 0xFF
        m = j[i + 1]
        ln = struct.unpack(">H", j[i + 2:i + 4])[0]
        if m in (0xC0, 0xC1, 0xC2):
            return i
        i += 2 + ln
    raise SystemExit("no SOF")

for name, comps in (("gray.jpg", 1), ("cmyk.jpg", 4), ("plain.jpg", 3)):
    j = rd(name)
    s = jpeg_sof(j)
    assert j[s + 9] == comps, (name, j[s + 9])
assert b"Adobe" in rd("cmyk.jpg")

# huge.jpg: plain.jpg whose SOF claims 65000x65000.
j = bytearray(rd("plain.jpg"))
s = jpeg_sof(j)
j[s + 5:s + 9] = struct.pack(">HH", 65000, 65000)
wr("huge.jpg", bytes(j))

# truncated.jpg: cut two thirds into plain.jpg, inside the entropy-coded data.
j = rd("plain.jpg")
wr("truncated.jpg", j[: len(j) * 2 // 3])

# PNG: check the colour type / bit depth ImageMagick chose, then craft the bad ones.
def ihdr(p):
    b = rd(p)
    assert b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR"
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", b[16:29])
    return w, h, depth, ctype, interlace, b

want = {"gray.png": (8, 0), "gray1.png": (1, 0), "gray_alpha.png": (8, 4),
        "palette.png": (None, 3), "palette_trns.png": (None, 3), "rgba.png": (8, 6),
        "rgb16.png": (16, 2), "rgba16.png": (16, 6), "plain.png": (8, 2),
        "interlaced.png": (8, 2)}
for p, (depth, ctype) in want.items():
    w, h, d, c, il, b = ihdr(p)
    assert c == ctype and (depth is None or d == depth), (p, d, c)
    assert (b"tRNS" in b) == (p == "palette_trns.png"), p
    assert il == (1 if p == "interlaced.png" else 0), p

def chunk(t, data):
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data))

# huge.png: a valid signature and IHDR claiming 100000x100000 RGB, one tiny IDAT, IEND.
wr("huge.png", b"\x89PNG\r\n\x1a\n"
   + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
   + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))

# truncated.png: plain.png cut in the middle of its IDAT.
b = rd("plain.png")
i = b.index(b"IDAT")
ln = struct.unpack(">I", b[i - 4:i])[0]
wr("truncated.png", b[: i + 4 + ln // 2])

# WebP: walk the RIFF chunks.
def riff_chunks(b):
    assert b[:4] == b"RIFF" and b[8:12] == b"WEBP"
    i, out = 12, []
    while i + 8 <= len(b):
        t = b[i:i + 4]
        n = struct.unpack("<I", b[i + 4:i + 8])[0]
        out.append((t, b[i + 8:i + 8 + n]))
        i += 8 + n + (n & 1)
    return out

def riff(chunks):
    body = b"WEBP"
    for t, d in chunks:
        body += t + struct.pack("<I", len(d)) + d + (b"\0" if len(d) & 1 else b"")
    return b"RIFF" + struct.pack("<I", len(body)) + body

assert [t for t, _ in riff_chunks(rd("plain.webp"))] == [b"VP8 "]
assert b"VP8L" in [t for t, _ in riff_chunks(rd("rgba.webp"))]

# huge.webp: a simple lossless file whose VP8L header claims 16384x16384 (268 megapixels).
(t, d), = riff_chunks(rd(f"{tmp}/plain_lossless.webp"))
assert t == b"VP8L" and d[0] == 0x2F
bits = struct.unpack("<I", d[1:5])[0]
bits = (bits & ~((1 << 28) - 1)) | 16383 | (16383 << 14)
wr("huge.webp", riff([(b"VP8L", d[:1] + struct.pack("<I", bits) + d[5:])]))

# orient6.webp: extended format (VP8X with the EXIF flag), VP8L image, EXIF chunk holding
# a raw TIFF block (no "Exif\0\0" prefix, as the WebP spec says).
(t, d), = riff_chunks(rd(f"{tmp}/orient6_raw.webp"))
assert t == b"VP8L"
bits = struct.unpack("<I", d[1:5])[0]
w, h = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
vp8x = struct.pack("<B3x", 0x08) + struct.pack("<I", w - 1)[:3] + struct.pack("<I", h - 1)[:3]
wr("orient6.webp", riff([(b"VP8X", vp8x), (b"VP8L", d), (b"EXIF", exif_app1(6, True)[6:])]))
EOF

ls -l "$out"
