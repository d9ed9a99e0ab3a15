#!/usr/bin/python3
"""Fidelity of tools/light_reference.py against the seed project's own light Paprika output.

    /usr/bin/python3 tools/light_fidelity.py [--threads N] [--variants] [--double]
                                             [--min-raw DB] [--min-jpeg DB]

../shared/data/reference/light_model/origami_demo_light_paprika.jpg is 1280x864: the left
640x864 half is the input ../shared/data/photos/seed_project/origami.jpg (640x864, run at
that size: the demo was not resized), the right half the seed's light Paprika output, the
whole saved as JPEG quality 75 (its quantization tables are Pillow's quality-75 tables,
4:2:0). The script runs the port on origami.jpg and prints the PSNR of the right half:
  raw   the port's uint8 output against the demo's right half (about 38 dB: JPEG noise);
  jpeg  the port's output put beside the input the same way (1280x864) and saved as JPEG
        quality 75 with Pillow, against the demo's right half (about 50 dB).
It fails (exit 1) below --min-raw (default 37) or --min-jpeg (default 48).

--variants also runs plausible misreadings of the network's facts and prints their PSNRs,
to show which facts the demo pins down (each is a full run: about 20 s apiece on 2 threads).
--double also runs the port in float64 and prints how far float32 is from it.
"""
import argparse
import io
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import light_reference as L  # noqa: E402

SHARED = os.path.join(HERE, "..", "..", "shared")
DEMO = os.path.join(SHARED, "data", "reference", "light_model", "origami_demo_light_paprika.jpg")
PHOTO = os.path.join(SHARED, "data", "photos", "seed_project", "origami.jpg")
CKPT = os.path.join(SHARED, "weights", "cartoongan_light", "light_paprika_ckpt")


def psnr(a, b):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def jpeg75(rgb):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=75)
    return np.asarray(Image.open(buf).convert("RGB"))


# --- misreadings of the facts, for --variants ----------------------------------------------

def in_eps_in_sqrt(x, g, b, eps=L.EPS):
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * g + b


def in_unbiased(x, g, b, eps=L.EPS):
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    var = x.var(dim=(1, 2, 3), keepdim=True, unbiased=True)
    return (x - mean) / (torch.sqrt(var) + eps) * g + b


def in_per_channel(x, g, b, eps=L.EPS):
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)
    return (x - mean) / (torch.sqrt(var) + eps) * g + b


def shuffle_inverse(x):  # out[g*C/2 + j] = in[2j + g]
    n, c, h, w = x.shape
    return x.reshape(n, c // 2, 2, h, w).transpose(1, 2).reshape(n, c, h, w)


def dw_symmetric(x, w, stride):  # pad 1 on every side whatever the parity
    return F.conv2d(F.pad(x, (1, 1, 1, 1)), w, stride=stride, groups=x.shape[1])


def up_half_pixel(x):  # TF2 tf.image.resize / PyTorch align_corners=False
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def up_align_corners(x):
    return F.interpolate(x, size=(2 * x.shape[2], 2 * x.shape[3]), mode="bilinear", align_corners=True)


def up_nearest(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")


VARIANTS = (  # (label, ops overrides, BGR input)
    ("IN: eps inside the sqrt, (x-m)/sqrt(var+eps)", {"in": in_eps_in_sqrt}, False),
    ("IN: unbiased variance (N-1)", {"in": in_unbiased}, False),
    ("IN: per-channel statistics", {"in": in_per_channel}, False),
    ("shuffle: inverse permutation", {"shuffle": shuffle_inverse}, False),
    ("depthwise: pad 1/1 also on even sides", {"dw": dw_symmetric}, False),
    ("upsampling: half-pixel bilinear", {"up": up_half_pixel}, False),
    ("upsampling: align_corners bilinear", {"up": up_align_corners}, False),
    ("upsampling: nearest", {"up": up_nearest}, False),
    ("input and output BGR", {}, True),
)


def run(tensors, rgb, ops=None, bgr=False, dtype=torch.float32):
    model = L.LightGenerator(tensors, dtype)
    if ops:
        model.ops = dict(model.ops, **ops)
    x = rgb[:, :, ::-1].copy() if bgr else rgb
    y = L.forward_raw(model.eval(), x)
    out = L.to_uint8(y)
    return y, (out[:, :, ::-1].copy() if bgr else out)


def scores(inp, out, demo):
    right = demo[:, inp.shape[1]:]
    comp = jpeg75(np.concatenate([inp, out], 1))
    return psnr(out, right), psnr(comp[:, inp.shape[1]:], right)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", action="store_true")
    ap.add_argument("--double", action="store_true")
    ap.add_argument("--min-raw", type=float, default=37.0)
    ap.add_argument("--min-jpeg", type=float, default=48.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    demo = np.asarray(Image.open(DEMO).convert("RGB"))
    inp = np.asarray(Image.open(PHOTO).convert("RGB"))
    h, w = inp.shape[:2]
    if demo.shape != (h, 2 * w, 3):
        sys.exit("demo is %s, expected %dx%d (input beside output)" % (demo.shape, 2 * w, h))
    print("demo %dx%d; left half vs origami.jpg: %.2f dB (the input, JPEG-compressed again)"
          % (2 * w, h, psnr(inp, demo[:, :w])))
    tensors = L.read_checkpoint(CKPT)
    y, out = run(tensors, inp)
    raw, jpg = scores(inp, out, demo)
    print("port vs demo, right half: raw %.2f dB, as JPEG q75 (Pillow, composite) %.2f dB" % (raw, jpg))
    print("  (the port's own output as JPEG q75 alone, right half only: %.2f dB)"
          % psnr(jpeg75(out), demo[:, w:]))
    if a.double:
        y64, out64 = run(tensors, inp, dtype=torch.float64)
        d = np.abs(y.astype(np.float64) - y64)
        print("float32 vs float64 port: tanh output max |diff| %.3g, mean %.3g; uint8 differs in "
              "%d of %d values (max %d)" % (d.max(), d.mean(), int((out != out64).sum()), out.size,
                                            int(np.abs(out.astype(int) - out64).max())))
    if a.variants:
        v = (y.astype(np.float32) + np.float32(1)) * np.float32(127.5)
        rounded = np.clip(np.round(v), 0, 255).astype(np.uint8).transpose(1, 2, 0)
        r, j = scores(inp, rounded, demo)
        print("variant %-46s raw %.2f dB, JPEG q75 %.2f dB" % ("output rounded, not truncated:", r, j))
        for label, ops, bgr in VARIANTS:
            _, o = run(tensors, inp, ops, bgr)
            r, j = scores(inp, o, demo)
            print("variant %-46s raw %.2f dB, JPEG q75 %.2f dB" % (label + ":", r, j))
    if raw < a.min_raw or jpg < a.min_jpeg:
        sys.exit("light_fidelity: below %.1f / %.1f dB" % (a.min_raw, a.min_jpeg))


if __name__ == "__main__":
    main()
