#!/bin/sh
# make_jpeg_fixtures.sh: regenerates the damaged and unsupported JPEGs in tests/data/images/
# that tests/test_image.c decodes, and the pixels djpeg gets from the recoverable ones.
# Needs cjpeg and djpeg from libjpeg-turbo-progs (`apt-get install libjpeg-turbo-progs`,
# the same libjpeg-turbo the project links) and /usr/bin/python3 (standard library only).
# Also copies two files from ../shared/data/hunt/ (the PNG is test_image's eXIf case).
#
#   jpeg_missing_eoi.jpg       32x32 4:2:0 baseline, every scanline present, no EOI marker
#                              (copied from the shared hunt set)
#   jpeg_restart_damaged.jpg   32x32 4:2:0 baseline with a restart marker after every MCU
#                              (4 intervals); 3 bytes 6 bytes into the third interval are
#                              zeroed, so libjpeg decodes garbage there and resynchronises
#                              at RST2 ("extraneous bytes before marker 0xd2")
#   jpeg_truncated_rows.jpg    32x32 4:4:4 baseline cut in the middle of its scan; djpeg's
#                              output is gray from the MCU row where the data ran out, and
#                              the script prints that row (test_image expects 16 of 32)
#   jpeg_12bit.jpg             the 4:4:4 baseline with its SOF0 turned into SOF1 with sample
#                              precision 12: a valid header this libjpeg cannot decode
#   *.ppm                      `djpeg -dct int -ppm` of the two recoverable files
#
# djpeg is run with the settings cg_image_decode uses, which are libjpeg's defaults: the
# integer DCT (-dct int, named explicitly), fancy upsampling (no -nosmooth) and progressive
# block smoothing (no -nosmooth either), RGB output. The same library with the same settings
# gives the same pixels, so the test compares them exactly.
# Deterministic. Run from anywhere: tools/make_jpeg_fixtures.sh
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/tests/data/images"
hunt="$root/../shared/data/hunt"
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

cp "$hunt/jpeg_missing_eoi.jpg" "$out/jpeg_missing_eoi.jpg"
cp "$hunt/png_exif_orientation6_4x2.png" "$out/png_exif_orientation6_4x2.png"
chmod 644 "$out/jpeg_missing_eoi.jpg" "$out/png_exif_orientation6_4x2.png"

# A 32x32 picture with ramps, a wave and a checker band, so every block differs and damage
# shows.
"$py" - "$tmp/src.ppm" <<'EOF'
import math, sys
w = h = 32
px = bytearray()
for y in range(h):
    for x in range(w):
        r, g = 255 * x // (w - 1), 255 * y // (h - 1)
        b = int(128 + 100 * math.sin(x * 0.5) * math.cos(y * 0.4))
        if (x // 8 + y // 8) % 2 == 0 and 8 <= x < 24:
            r, b = 255 - r, 255 - b
        px += bytes((r, g, b))
open(sys.argv[1], "wb").write(b"P6\n32 32\n255\n" + px)
EOF

cjpeg -quality 90 -restart 1B -outfile "$tmp/restart.jpg" "$tmp/src.ppm"
cjpeg -quality 90 -sample 1x1 -outfile "$tmp/444.jpg" "$tmp/src.ppm"

"$py" - "$tmp" "$out" <<'EOF'
import sys
tmp, out = sys.argv[1], sys.argv[2]

def markers(d):
    """(offset, code) of every marker after the SOS header, where entropy data starts."""
    sos = d.index(b"\xff\xda")
    start = sos + 2 + (d[sos + 2] << 8 | d[sos + 3])
    found, i = [], start
    while i + 1 < len(d):
        if d[i] == 0xFF and d[i + 1] not in (0x00, 0xFF):
            found.append((i, d[i + 1]))
        i += 1
    return start, found

# Damage: zero 3 bytes 6 bytes after the RST1 marker (the third restart interval).
d = bytearray(open(tmp + "/restart.jpg", "rb").read())
start, ms = markers(d)
rst1 = [o for o, c in ms if c == 0xD1]
assert len(rst1) == 1, ms
d[rst1[0] + 8:rst1[0] + 11] = b"\0\0\0"
open(out + "/jpeg_restart_damaged.jpg", "wb").write(d)

# Truncation: half-way through the entropy data of the 4:4:4 file.
d = open(tmp + "/444.jpg", "rb").read()
start, ms = markers(d)
eoi = [o for o, c in ms if c == 0xD9][0]
open(out + "/jpeg_truncated_rows.jpg", "wb").write(d[:start + (eoi - start) // 2])

# 12-bit: SOF0 -> SOF1 (extended sequential), precision byte 8 -> 12.
d = bytearray(d)
sof = d.index(b"\xff\xc0")
assert d[sof + 4] == 8
d[sof + 1], d[sof + 4] = 0xC1, 12
open(out + "/jpeg_12bit.jpg", "wb").write(d)
EOF

cd "$out"
# djpeg exits with 2 when it warned, which these files must make it do.
for f in jpeg_missing_eoi jpeg_restart_damaged; do
    rc=0
    djpeg -dct int -ppm -outfile "$f.ppm" "$f.jpg" 2>"$tmp/$f.log" || rc=$?
    [ "$rc" -eq 2 ]
    echo "$f.jpg: djpeg says: $(tr '\n' ' ' <"$tmp/$f.log")"
done
# The damage must be of the kinds the test expects.
grep -q "Premature end of JPEG file" "$tmp/jpeg_missing_eoi.log"
grep -q "extraneous bytes before marker 0xd2" "$tmp/jpeg_restart_damaged.log"

# Where the truncated file's data ran out: the first 8-row band with a flat (128,128,128)
# block, which is what libjpeg decodes missing blocks to.
djpeg -dct int -ppm -outfile "$tmp/trunc.ppm" jpeg_truncated_rows.jpg 2>/dev/null || [ $? -eq 2 ]
"$py" - "$tmp/trunc.ppm" <<'EOF'
import sys
d = open(sys.argv[1], "rb").read()
px = d[len(b"P6\n32 32\n255\n"):]
def gray_block(bx, by):
    return all(px[((by * 8 + y) * 32 + bx * 8 + x) * 3 + c] == 128
               for y in range(8) for x in range(8) for c in range(3))
band = next(by for by in range(4) if any(gray_block(bx, by) for bx in range(4)))
print("jpeg_truncated_rows.jpg: rows present before the data runs out: %d of 32" % (band * 8))
assert 8 <= band * 8 <= 24
EOF
if djpeg -ppm jpeg_12bit.jpg >/dev/null 2>"$tmp/12.log"; then exit 1; fi
echo "jpeg_12bit.jpg: djpeg says: $(cat "$tmp/12.log")"
