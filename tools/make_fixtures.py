#!/usr/bin/python3
"""Write the committed test fixtures from the PyTorch reference (deterministic).

    /usr/bin/python3 tools/make_fixtures.py [--threads N]

tests/data/ops/    one case per op: <case>_in.npy, <case>_w.npy, <case>_b.npy,
                   <case>_out.npy (+ instnorm_scale/_shift.npy), float32, CHW (no batch),
                   weights in PyTorch layouts (conv [cout][cin][kh][kw], deconv
                   [cin][cout][kh][kw]), made by torch.nn.functional from seeded inputs.
tests/data/model/  input_64x48.png and input_37x29.png (crops of original_test_set/in2.png),
                   <style>_<w>x<h>.png = stylize() for the four styles, and
                   hayao_64x48_raw.npy = forward_raw() tanh output [3][48][64] (BGR) on
                   the 64x48 input as float32 (v / 255) * 2 - 1, BGR.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cartoongan_torch as cg  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
OPS = os.path.join(ROOT, "tests", "data", "ops")
MODEL = os.path.join(ROOT, "tests", "data", "model")
# Crops of in2.png (256x254): (x, y, w, h), chosen as textured regions (not flat sky).
CROPS = {"64x48": (112, 120, 64, 48), "37x29": (40, 170, 37, 29)}


def save(name, a):
    np.save(os.path.join(OPS, name + ".npy"), np.ascontiguousarray(a, dtype=np.float32))


def t(a):
    return torch.from_numpy(a)[None]


def make_ops(rng):
    rnd = lambda *s: rng.standard_normal(s).astype(np.float32)
    convs = {  # case: (cin, cout, k, h, w, stride, pad)
        "conv7": (3, 5, 7, 13, 11, 1, 0),
        "conv3": (6, 7, 3, 9, 10, 1, 1),
        "conv3s2": (4, 6, 3, 11, 9, 2, 1),
    }
    for case, (cin, cout, k, h, w, s, p) in convs.items():
        x, wt, b = rnd(cin, h, w), rnd(cout, cin, k, k) * 0.2, rnd(cout)
        y = F.conv2d(t(x), torch.from_numpy(wt), torch.from_numpy(b), s, p)[0]
        for suffix, a in (("in", x), ("w", wt), ("b", b), ("out", y.numpy())):
            save("%s_%s" % (case, suffix), a)

    x, wt, b = rnd(5, 6, 7), rnd(5, 4, 3, 3) * 0.2, rnd(4)  # deconv: [cin][cout][kh][kw]
    y = F.conv_transpose2d(t(x), torch.from_numpy(wt), torch.from_numpy(b), 2, 1, 1)[0]
    for suffix, a in (("in", x), ("w", wt), ("b", b), ("out", y.numpy())):
        save("deconv_" + suffix, a)

    # Instance norm; channel 2 is constant 0.75 (exact sums, zero variance -> shift).
    x = rnd(6, 7, 9) * 3 + 1
    x[2] = 0.75
    scale, shift = rnd(6), rnd(6)
    y = cg.instance_norm(t(x), torch.from_numpy(scale), torch.from_numpy(shift), 1e-9)[0]
    for suffix, a in (("in", x), ("scale", scale), ("shift", shift), ("out", y.numpy())):
        save("instnorm_" + suffix, a)

    x = rnd(2, 5, 6)
    for p in (1, 3):
        save("reflect%d_in" % p, x)
        save("reflect%d_out" % p, F.pad(t(x), (p,) * 4, mode="reflect")[0].numpy())
    x = rnd(2, 5, 6) * 2
    for op in ("relu", "tanh"):
        save(op + "_in", x)
        save(op + "_out", getattr(torch, op)(torch.from_numpy(x)).numpy())


def make_model(threads):
    src = np.asarray(Image.open(os.path.join(SHARED, "data", "photos", "original_test_set",
                                             "in2.png")).convert("RGB"))
    inputs = {}
    for tag, (x, y, w, h) in CROPS.items():
        inputs[tag] = np.ascontiguousarray(src[y:y + h, x:x + w])
        Image.fromarray(inputs[tag]).save(os.path.join(MODEL, "input_%s.png" % tag))
    for style in cg.STYLES:
        model = cg.load_generator(os.path.join(SHARED, "weights", "cartoongan", style), threads)
        for tag, rgb in inputs.items():
            Image.fromarray(cg.stylize(model, rgb)).save(
                os.path.join(MODEL, "%s_%s.png" % (style, tag)))
        if style == "hayao":
            x = inputs["64x48"].astype(np.float32)[:, :, ::-1].transpose(2, 0, 1)
            y = cg.forward_raw(model, x / np.float32(255) * np.float32(2) - np.float32(1))
            np.save(os.path.join(MODEL, "hayao_64x48_raw.npy"), y.astype(np.float32))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(OPS, exist_ok=True)
    os.makedirs(MODEL, exist_ok=True)
    torch.manual_seed(0)
    make_ops(np.random.default_rng(20180618))
    make_model(a.threads)
    for d in (OPS, MODEL):
        files = sorted(os.listdir(d))
        size = sum(os.path.getsize(os.path.join(d, f)) for f in files)
        print("%s: %d files, %d bytes" % (os.path.relpath(d, ROOT), len(files), size))


if __name__ == "__main__":
    main()
