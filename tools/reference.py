#!/usr/bin/python3
"""Stylize one image with the PyTorch reference (tools/cartoongan_torch.py).

    /usr/bin/python3 tools/reference.py --weights ../shared/weights/cartoongan/hayao \\
        in.png out.png [--threads N] [--time] [--raw] [--eps E]

Default: stylize(), i.e. reflect-pad to multiples of 4, run, crop back to the input size.
--raw: forward_raw() on the image as is (no pad / crop), as the authors' test code did;
       the output then has sides 4*ceil(side/4).
--time: also print the median wall time of the forward pass over a few runs.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cartoongan_torch as cg  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, help="style directory of .npy files")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--time", action="store_true", help="print median forward time")
    ap.add_argument("--runs", type=int, default=5, help="timed runs with --time")
    ap.add_argument("--raw", action="store_true", help="no pad to 4 / crop")
    ap.add_argument("--eps", type=float, default=cg.EPS, help="instance-norm eps")
    a = ap.parse_args()

    model = cg.load_generator(a.weights, a.threads, a.eps)
    rgb = np.asarray(Image.open(a.input).convert("RGB"))
    if a.raw:
        x = rgb.astype(np.float32)[:, :, ::-1].transpose(2, 0, 1) / 255.0 * 2.0 - 1.0
        run = lambda: cg.to_uint8(cg.forward_raw(model, x))
    else:
        run = lambda: cg.stylize(model, rgb)
    out = run()
    Image.fromarray(out).save(a.output)
    if a.time:
        times = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        h, w = rgb.shape[:2]
        print("%dx%d, %d threads: median %.3f s over %d runs (min %.3f s)"
              % (w, h, a.threads or cg.torch.get_num_threads(), statistics.median(times),
                 a.runs, min(times)))


if __name__ == "__main__":
    main()
