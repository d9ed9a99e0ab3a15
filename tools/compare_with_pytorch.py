#!/usr/bin/python3
"""Compare `cartoongan cartoonize` with the PyTorch reference on photos the tests never use.

    /usr/bin/python3 tools/compare_with_pytorch.py [--styles S,S] [--max-side N] PHOTO...

Each photo is (optionally downscaled so its longer side is at most N, then) cropped to
sides that are multiples of 4 and saved as PNG, so that neither side adds compression;
then it is cartoonized by build/cartoongan (--keep-original-size --skip-comparison) and
by tools/cartoongan_torch.py, and the two are compared: PSNR, the share of 8-bit values
equal and within 1 level, and the largest difference. CARTOONGAN_KERNEL in the
environment picks the engine's kernel (e.g. avx512 to compare without AMX). This is the check of issue 2's "Done when".
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cartoongan_torch as cg  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def psnr(a, b):
    se = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if se == 0 else 10 * np.log10(255.0 ** 2 / se)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", nargs="+")
    ap.add_argument("--styles", default=",".join(cg.STYLES))
    ap.add_argument("--max-side", type=int, default=0)
    ap.add_argument("--weights", default=os.path.join(ROOT, "..", "shared", "weights", "cartoongan"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    worst = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        print("%-18s %-10s %-8s %9s %10s %12s %8s %7s %7s" % ("photo", "size", "style", "PSNR dB", "equal", "within 1 lvl",
                                                             "max diff", "C s", "torch s"))
        for photo in a.photos:
            im = Image.open(photo).convert("RGB")
            if a.max_side and max(im.size) > a.max_side:
                s = a.max_side / max(im.size)
                im = im.resize((round(im.size[0] * s), round(im.size[1] * s)), Image.LANCZOS)
            w, h = im.size[0] // 4 * 4, im.size[1] // 4 * 4
            im = im.crop((0, 0, w, h))
            name = os.path.splitext(os.path.basename(photo))[0] + ".png"
            src = os.path.join(tmp, name)
            im.save(src)
            rgb = np.asarray(im)
            for style in a.styles.split(","):
                out = os.path.join(tmp, "out")
                t0 = time.perf_counter()
                subprocess.run([os.path.join(ROOT, "build", "cartoongan"), "cartoonize", "--quiet", "--styles", style,
                                "--keep-original-size", "--skip-comparison", "--overwrite", "--threads", str(a.threads),
                                "--weights-dir", a.weights, "--output-dir", out, src], check=True)
                tc = time.perf_counter() - t0
                ours = np.asarray(Image.open(os.path.join(out, style, name)).convert("RGB"))
                model = cg.load_generator(os.path.join(a.weights, style), a.threads)
                t0 = time.perf_counter()
                ref = cg.stylize(model, rgb)
                tt = time.perf_counter() - t0
                p = psnr(ours, ref)
                d = np.abs(ours.astype(int) - ref.astype(int))
                worst = min(worst, p)
                print("%-18s %-10s %-8s %9.2f %9.4f%% %11.4f%% %8d %7.1f %7.1f" % (
                    name, "%dx%d" % (w, h), style, p, 100 * np.mean(d == 0), 100 * np.mean(d <= 1), d.max(), tc, tt),
                    flush=True)
    print("lowest PSNR: %.2f dB (%s)" % (worst, "ok, >= 50 dB" if worst >= 50 else "BELOW 50 dB"))
    return 0 if worst >= 50 else 1


if __name__ == "__main__":
    sys.exit(main())
