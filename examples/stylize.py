#!/usr/bin/env python3
"""stylize.py: libcartoongan from Python through ctypes (no build step): cartoonizes a
binary PPM (P6, maxval 255, no comments) with one style's weights.
usage: stylize.py WEIGHTS.safetensors IN.ppm OUT.ppm"""
import ctypes, re, sys

lib = ctypes.CDLL("libcartoongan.so.0")
lib.cg_last_error.restype = ctypes.c_char_p
lib.cg_model_load.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p]
lib.cg_stylize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                           ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
lib.cg_model_free.argtypes = [ctypes.c_void_p]

weights, src, dst = sys.argv[1:4]
data = open(src, "rb").read()
head = re.match(rb"P6\s+(\d+)\s+(\d+)\s+255\s", data)
w, h = (int(head[1]), int(head[2])) if head else (0, 0)
if not head or len(data) < head.end() + w * h * 3:
    sys.exit(f"{src}: not a binary PPM (P6, maxval 255)")
pixels = ctypes.create_string_buffer(data[head.end():head.end() + w * h * 3], w * h * 3)
model = ctypes.c_void_p()
if lib.cg_model_load(ctypes.byref(model), weights.encode()) != 0 or \
        lib.cg_stylize(model, pixels, pixels, w, h, None) != 0:
    sys.exit(lib.cg_last_error().decode())
lib.cg_model_free(model)
open(dst, "wb").write(b"P6\n%d %d\n255\n" % (w, h) + pixels.raw)
