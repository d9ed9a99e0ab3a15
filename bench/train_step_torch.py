#!/usr/bin/python3
"""Times one CartoonGAN training step in PyTorch, the baseline for the C training engine.

    /usr/bin/python3 bench/train_step_torch.py [--batch 4] [--size 256] [--threads 2]
        [--steps 3]

Runs tools/train_reference.py's Trainer: a GAN step (G forward, D three times plus once
more for G's loss, VGG twice, both backwards, both Adam updates; lsgan, batch-norm D,
style weight 0) and an init step (G, VGG twice, backward, G's Adam update). G is the
released hayao style, D fresh (seed 0), VGG the fixtures' deterministic one (any VGG of
these shapes runs at the same speed). Inputs are seeded uniform noise in [-1, 1]: the
time does not depend on the pixel values. Each phase: one warm-up step, then the median
of --steps timed steps. Prints one machine-readable line:

    torch gan_step_s=... init_step_s=... peak_rss_mb=... batch=... size=... threads=...

peak_rss_mb is the process's ru_maxrss (the larger of the two phases, which run in turn).
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
sys.path.insert(0, TOOLS)
import make_train_fixtures as mtf  # noqa: E402
import train_reference as tr  # noqa: E402


def time_phase(phase, args, images):
    g = tr.load_g(mtf.HAYAO)
    d = tr.fresh_d("batch", 0)
    vgg = tr.vgg_from_torchvision(mtf.det_vgg())
    t = tr.Trainer(g, d, vgg, phase, lr_g=8e-5 if phase == "gan" else 2e-4, lr_d=3e-5)
    times = []
    for i in range(args.steps + 1):  # step 0 is the warm-up (allocations, Adam state)
        t0 = time.perf_counter()
        t.step(*images)
        if i:
            times.append(time.perf_counter() - t0)
    # Every step's time on stderr: on a shared machine the spread shows contention.
    print("torch %s steps_s=%s" % (phase, ",".join("%.3f" % x for x in times)), file=sys.stderr)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()
    if a.size % 4 or a.size < 32 or a.batch < 1 or a.steps < 1:
        ap.error("--size must be a multiple of 4 and at least 32; --batch, --steps >= 1")
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(1)
    images = [torch.rand(a.batch, 3, a.size, a.size, generator=gen) * 2 - 1 for _ in range(3)]
    gan = time_phase("gan", a, images)
    init = time_phase("init", a, images[:1])
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    print("torch gan_step_s=%.3f init_step_s=%.3f peak_rss_mb=%.0f batch=%d size=%d threads=%d"
          % (gan, init, rss_mb, a.batch, a.size, a.threads))


if __name__ == "__main__":
    main()
