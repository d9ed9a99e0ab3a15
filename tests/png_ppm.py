#!/usr/bin/env python3
"""png_ppm.py: moves pixels between PNG and binary PPM for tests/test_install.sh, which
compares the CLI's PNG output with the examples' PPM output (examples/stylize.c and .py read
and write PPM, to need no image library). Standard library only; 8-bit RGB/RGBA PNGs,
not interlaced (what the CLI writes), and refuses anything else.

  png_ppm.py to-ppm IN.png OUT.ppm     decode (RGBA must be opaque: alpha is dropped)
  png_ppm.py to-png IN.ppm OUT.png     encode as 8-bit RGB
  png_ppm.py pattern W H OUT.ppm       a deterministic photo-like test image
"""
import math
import re
import struct
import sys
import zlib


def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{path}: not a PNG")
    pos, idat, ihdr = 8, b"", None
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        sys.exit(f"{path}: only 8-bit RGB/RGBA, non-interlaced PNGs are handled")
    bpp = 3 if ctype == 2 else 4
    raw, stride, out = zlib.decompress(idat), w * bpp, bytearray()
    prev = bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
        if bpp == 4:
            if any(line[3::4][x] != 255 for x in range(w)):
                sys.exit(f"{path}: has transparent pixels")
            line = bytearray(v for x in range(w) for v in line[4 * x:4 * x + 3])
        out += line
    return w, h, bytes(out)


def write_ppm(path, w, h, rgb):
    open(path, "wb").write(b"P6\n%d %d\n255\n" % (w, h) + rgb)


def read_ppm(path):
    data = open(path, "rb").read()
    m = re.match(rb"P6\s+(\d+)\s+(\d+)\s+255\s", data)
    w, h = int(m[1]), int(m[2])
    return w, h, data[m.end():m.end() + w * h * 3]


def write_png(path, w, h, rgb):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = b"".join(b"\0" + rgb[y * w * 3:(y + 1) * w * 3] for y in range(h))
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def pattern(w, h):
    """Sky, a sun, hills and some texture: smooth areas and edges, as photos have."""
    px = bytearray()
    for y in range(h):
        for x in range(w):
            t = y / h
            r, g, b = 90 + 100 * t, 150 + 60 * t, 235 - 40 * t
            if (x - 0.7 * w) ** 2 + (y - 0.25 * h) ** 2 < (0.12 * h) ** 2:
                r, g, b = 250, 220, 120
            if y > h * (0.6 + 0.1 * math.sin(x / w * 7)):
                r, g, b = 60 + 30 * math.sin(x * 0.9 + y * 0.4), 130 + 25 * math.cos(x * 0.3), 50
            px += bytes(max(0, min(255, int(v))) for v in (r, g, b))
    return bytes(px)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "to-ppm":
        write_ppm(sys.argv[3], *read_png(sys.argv[2]))
    elif cmd == "to-png":
        write_png(sys.argv[3], *read_ppm(sys.argv[2]))
    elif cmd == "pattern":
        w, h = int(sys.argv[2]), int(sys.argv[3])
        write_ppm(sys.argv[4], w, h, pattern(w, h))
    else:
        sys.exit(__doc__)
