#!/usr/bin/python3
"""Reproduce the authors' lossless outputs (in1..in3_Hayao.png) with the PyTorch reference.

The outputs in ../shared/data/reference/original_model_outputs were made by the authors'
Torch7 test.lua (Yijunmaverick/CartoonGAN-Test-Pytorch-Torch; the .png outputs come from
it, test.py writes .jpg). Its recipe, replicated by authors_recipe() below:
  1. image.load(path, 3, 'float'): x = byte * (float)(1/255), float32 RGB.
  2. image.scale(img, 450, 'bilinear'): longer side 450, other side
     floor(other * 450 / longer) (a Lua number truncated to a tensor size); separable
     two-pass resize in float32, rows (width) first then columns, each pass
     scale = (float)(n_src-1)/(n_dst-1), s = (float)d*scale, i = (long)s, f = s-i,
     dst[d] = (1-f)*src[i] + f*src[i+1] for d < n_dst-1, dst[n_dst-1] = src[n_src-1]
     (= bilinear align_corners=True; all in1..in3 sides are upscaled). No rounding.
  3. BGR, x*2-1 (float32), the network WITHOUT padding to 4 (450x448 -> 452x448 out).
     Its instance norm was Torch7's nn.InstanceNormalization with its default
     eps = 1e-5 (the PyTorch port uses 1e-9; 1e-5 matches the files far better).
  4. (y+1)/2 in float32, clamped to [0,1], *255 in double and TRUNCATED to uint8.
The script prints the PSNR of that recipe and of the variants, and fails below 50 dB.

    /usr/bin/python3 tools/check_reference.py [--all] [--threads N]
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
PHOTOS = os.path.join(SHARED, "data", "photos", "original_test_set")
OUTPUTS = os.path.join(SHARED, "data", "reference", "original_model_outputs")


def lua_scale_up(src, n_dst, axis):
    """Torch7 image.scaleBilinear's 1-D pass (upscaling branch), float32."""
    n_src = src.shape[axis]
    assert n_dst > n_src > 1, "only the upscaling branch is implemented"
    scale = np.float32(n_src - 1) / np.float32(n_dst - 1)
    s = np.arange(n_dst - 1).astype(np.float32) * scale
    i = s.astype(np.int64)
    f = (s - i.astype(np.float32)).reshape([-1 if k == axis else 1 for k in range(src.ndim)])
    out = (np.float32(1) - f) * np.take(src, i, axis) + f * np.take(src, i + 1, axis)
    return np.concatenate([out.astype(np.float32), np.take(src, [n_src - 1], axis)], axis)


def target_size(h, w, side=450):
    m = max(h, w)
    return h * side // m, w * side // m


def resize(rgb, how):
    """uint8 [h,w,3] -> float32 [3,H,W] in [0,1]."""
    x = rgb.astype(np.float32).transpose(2, 0, 1) * np.float32(1 / 255)
    H, W = target_size(*rgb.shape[:2])
    if how == "lua":
        return lua_scale_up(lua_scale_up(x, W, 2), H, 1)
    if how == "torch":  # F.interpolate, align_corners=True
        t = F.interpolate(torch.from_numpy(x)[None], (H, W), mode="bilinear",
                          align_corners=True)
        return t[0].numpy()
    if how == "torch_u8":  # same, then rounded to uint8 before the network
        return np.rint(resize(rgb, "torch") * 255) / np.float32(255)
    raise ValueError(how)


def quantize(y_bgr, how):
    """Tanh output [3,H,W] BGR -> uint8 [H,W,3] RGB."""
    if how == "round":
        return cg.to_uint8(y_bgr)
    v = np.clip(((y_bgr + np.float32(1)) / np.float32(2)).astype(np.float64), 0, 1) * 255
    return np.floor(v).astype(np.uint8)[::-1].transpose(1, 2, 0)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="in1, in2 and in3 (default in1)")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    style_dir = os.path.join(SHARED, "weights", "cartoongan", "hayao")
    models = {eps: cg.load_generator(style_dir, a.threads, eps) for eps in (1e-5, 1e-9)}
    best = 0.0
    for name in ("in1", "in2", "in3") if a.all else ("in1",):
        rgb = np.asarray(Image.open(os.path.join(PHOTOS, name + ".png")).convert("RGB"))
        ref = np.asarray(Image.open(os.path.join(OUTPUTS, name + "_Hayao.png")).convert("RGB"))
        print("%s: %dx%d -> %dx%d (w x h), reference %dx%d"
              % ((name, rgb.shape[1], rgb.shape[0]) + target_size(*rgb.shape[:2])[::-1]
                 + (ref.shape[1], ref.shape[0])))
        for eps, model in models.items():
            for rs in ("lua", "torch", "torch_u8"):
                y = cg.forward_raw(model, resize(rgb, rs)[::-1] * np.float32(2) - np.float32(1))
                for q in ("trunc", "round"):
                    out = quantize(y, q)
                    p = psnr(out, ref)
                    best = max(best, p)
                    tag = " <- authors' recipe" if (eps, rs, q) == (1e-5, "lua", "trunc") else ""
                    print("  eps %-5g resize %-8s output %-5s: %6.2f dB, %6d values differ, "
                          "max %d%s" % (eps, rs, q, p, np.count_nonzero(out != ref),
                                        np.abs(out.astype(int) - ref).max(), tag))
    if best < 50:
        sys.exit("FAIL: best PSNR %.2f dB < 50 dB" % best)


if __name__ == "__main__":
    main()
