#!/usr/bin/python3
"""Make the fixtures of tests/test_smooth.c: small images and what OpenCV makes of them.

`cartoongan smooth` (src/io/smooth.c) is the seed project's scripts/smooth.py
(mnicnc404/CartoonGan-tensorflow, after taki0112's edge_smooth.py), the CartoonGAN paper's
edge-promoting step, rewritten in C. This script runs that recipe with OpenCV and numpy
on each fixture and writes, under tests/data/smooth/:

    NAME.png         the input (RGB, 8-bit)
    NAME_gray.png    cv2.cvtColor(bgr, COLOR_BGR2GRAY)
    NAME_edges.png   cv2.Canny(gray, 100, 200): 0 or 255
    NAME_smooth.png  the smoothed image, computed with smooth.py's own loop

The recipe, as smooth.py does it: Canny (3x3 Sobel, L1 magnitude) on the gray image,
cv2.dilate with a 5x5 square of ones, then every pixel where the dilation is non-zero
gets, per channel, the 5x5 Gaussian (cv2.getGaussianKernel(5, 0): [1 4 6 4 1]/16, outer
product) of the image padded by 2 with np.pad(mode='reflect'), assigned into a uint8
array (truncated). The one departure: smooth.py reads the gray image with
cv2.imread(f, 0), which leaves the conversion to each decoder (libpng's rgb_to_gray,
libjpeg's Y channel, cvtColor for WebP); the C side converts the decoded RGB itself, as
cvtColor does, whatever the format. The script prints how many gray pixels the two
ways differ in on each fixture, for the record.

It also checks, over all 2^24 colours, that cvtColor's rounding is the formula
(9798 R + 19235 G + 3735 B + 16384) >> 15 that src/io/smooth.c uses (OpenCV 4's 15-bit
coefficients; the 14-bit 4899/9617/1868 of OpenCV 2 and 3 differ on 43864 colours).

    /usr/bin/python3 tools/make_smooth_fixtures.py [--anime DIR] [--out DIR]

Needs Debian's python3-opencv (apt-get install python3-opencv) and numpy.
"""
import argparse
import glob
import os
import sys

import cv2
import numpy as np


def smooth_py(bgr, gray):
    """smooth.py's body on one image, with `gray` as its gray image."""
    kernel_size = 5
    kernel = np.ones((kernel_size, kernel_size), np.uint8)
    gauss = cv2.getGaussianKernel(kernel_size, 0)
    gauss = gauss * gauss.transpose(1, 0)
    pad_img = np.pad(bgr, ((2, 2), (2, 2), (0, 0)), mode='reflect')
    edges = cv2.Canny(gray, 100, 200)
    dilation = cv2.dilate(edges, kernel)
    gauss_img = np.copy(bgr)
    idx = np.where(dilation != 0)
    for i in range(np.sum(dilation != 0)):
        y, x = idx[0][i], idx[1][i]
        for c in range(3):
            gauss_img[y, x, c] = np.sum(np.multiply(
                pad_img[y:y + kernel_size, x:x + kernel_size, c], gauss))
    return edges, gauss_img


def check_gray_formula():
    """cvtColor(BGR2GRAY) over every colour against the fixed-point formula."""
    v = np.arange(1 << 24, dtype=np.uint32)
    bgr = np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], axis=-1).astype(np.uint8)
    bgr = bgr.reshape(4096, 4096, 3)
    got = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.int64)
    b, g, r = (bgr[..., k].astype(np.int64) for k in range(3))
    want = (9798 * r + 19235 * g + 3735 * b + 16384) >> 15
    bad = int(np.sum(got != want))
    print(f"cvtColor BGR2GRAY vs (9798 R + 19235 G + 3735 B + 16384) >> 15: {bad} of 2^24 colours differ")
    return bad == 0


def synthetic(rng):
    """The edge cases: name -> RGB uint8 image."""
    out = {}
    out['flat'] = np.full((16, 16, 3), (120, 130, 140), np.uint8)
    # one bright vertical line and one diagonal on black: sharp, strong edges
    a = np.zeros((20, 24, 3), np.uint8)
    a[:, 10] = 255
    for k in range(14):
        a[3 + k, 2 + k] = (200, 90, 30)
    out['line'] = a
    # vertical steps of contrast d give an L1 magnitude of 4d at the two pixels beside
    # the step: 24/25/26 straddle the low threshold (100), 49/50/51 the high one (200)
    s = np.full((12, 7 * 6, 3), 60, np.uint8)
    for k, d in enumerate((24, 25, 26, 49, 50, 51)):
        s[:, 7 * k + 3:7 * k + 7] = 60 + d
    out['steps'] = s
    # per-row contrast: the magnitudes land on and around the thresholds (a 3x3 Sobel's
    # |dx| + |dy| is always even, so 100 and 200 themselves are the cases that test > vs
    # >=), and the strong rows must pull their weak neighbours in through hysteresis while
    # an isolated weak run stays out
    t = np.full((40, 20, 3), 50, np.uint8)
    ds = [25, 25, 25, 24, 25, 26, 25, 25, 25, 24, 24, 25, 26, 26, 25, 50, 50, 50, 49, 50,
          51, 50, 50, 51, 52, 30, 30, 30, 30, 30, 25, 25, 25, 0, 0, 30, 30, 30, 0, 0]
    for y, d in enumerate(ds):
        t[y, 10:] = 50 + d
    out['thresholds'] = t
    # a weak contour (magnitude 120) touching a strong one (204), and a weak one alone
    h = np.full((24, 30, 3), 100, np.uint8)
    h[4:20, 4:8] = 151                      # strong: step 51
    h[4:20, 8:14] = 130                     # weak continuation: step 30 to 100 at x=14
    h[4:20, 20:26] = 130                    # weak, not connected to anything strong
    out['hysteresis'] = h
    # three grey levels at random: many equal magnitudes, so the > / >= tie rules and the
    # diagonal directions all come up
    levels = np.array([0, 70, 140], np.uint8)
    q = levels[rng.integers(0, 3, (30, 33))]
    out['ties'] = np.repeat(q[..., None], 3, axis=2)
    # random colours: the gray conversion's rounding, and a dense edge map
    out['noise'] = rng.integers(0, 256, (21, 26, 3), dtype=np.uint8)
    # smooth blobs: gradients of every direction and strength, weak and strong
    yy, xx = np.mgrid[0:36, 0:44]
    blob = 128 + 127 * np.sin(xx / 2.3 + yy / 7.0) * np.cos(yy / 3.1 - xx / 11.0)
    out['blobs'] = np.stack([blob, 0.8 * blob + 20, np.clip(blob * 1.3 - 40, 0, 255)],
                            axis=-1).round().astype(np.uint8)
    # sizes: odd, exactly the kernel, smaller than the kernel, single rows and columns
    strong = np.array([0, 120, 255], np.uint8)
    for name, (hh, ww) in (('odd_17x9', (9, 17)), ('odd_9x17', (17, 9)), ('k_5x5', (5, 5)),
                           ('small_3x2', (2, 3)), ('small_2x3', (3, 2)), ('small_2x2', (2, 2)),
                           ('px_1x1', (1, 1)), ('row_7x1', (1, 7)), ('col_1x7', (7, 1)),
                           ('row_12x2', (2, 12))):
        img = strong[rng.integers(0, 3, (hh, ww))]
        out[name] = np.stack([img, img, 255 - img], axis=-1)
    # checkerboards of full contrast: 1-pixel squares have no Sobel gradient inside (only
    # at the replicated border); 3-pixel squares have edges and dilation everywhere
    for name, cell in (('checker1', 1), ('checker3', 3)):
        yy, xx = np.mgrid[0:11, 0:13]
        cb = (((yy // cell + xx // cell) % 2) * 255).astype(np.uint8)
        out[name] = np.repeat(cb[..., None], 3, axis=2)
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--anime', default=os.path.join(root, '..', 'shared', 'data', 'cartoon', 'anime'),
                    help='folder of cartoon images to take crops from')
    ap.add_argument('--out', default=os.path.join(root, 'tests', 'data', 'smooth'))
    args = ap.parse_args()

    ok = check_gray_formula()
    rng = np.random.default_rng(20180618)  # CartoonGAN's CVPR date: any fixed seed will do
    images = {}  # name -> RGB
    files = sorted(glob.glob(os.path.join(args.anime, '*')))
    if len(files) < 3:
        sys.exit(f"make_smooth_fixtures: need 3 images in {args.anime}")
    # 40x32 crops of real cartoons, where the edges are the ones training will see: in
    # each of the first three, the window (on an 8-pixel grid) with the most Canny edges
    for k, f in enumerate(files[:3]):
        bgr = cv2.imread(f, cv2.IMREAD_COLOR)
        if bgr is None:
            sys.exit(f"make_smooth_fixtures: cannot read {f}")
        e = cv2.Canny(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), 100, 200) > 0
        best = max(((int(e[y:y + 32, x:x + 40].sum()), y, x)
                    for y in range(0, bgr.shape[0] - 32 + 1, 8)
                    for x in range(0, bgr.shape[1] - 40 + 1, 8)))
        _, y, x = best
        images[f'anime{k}'] = bgr[y:y + 32, x:x + 40, ::-1]
    images.update(synthetic(rng))

    os.makedirs(args.out, exist_ok=True)
    for name, rgb in images.items():
        rgb = np.ascontiguousarray(rgb)
        path = os.path.join(args.out, name + '.png')
        cv2.imwrite(path, rgb[..., ::-1])
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)  # as smooth.py reads it
        assert bgr is not None and np.array_equal(bgr[..., ::-1], rgb), name
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        edges, smooth = smooth_py(bgr, gray)
        cv2.imwrite(os.path.join(args.out, name + '_gray.png'), gray)
        cv2.imwrite(os.path.join(args.out, name + '_edges.png'), edges)
        cv2.imwrite(os.path.join(args.out, name + '_smooth.png'), smooth)
        # smooth.py's own gray (the decoder's) for the record
        gray_dec = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        edges_dec, smooth_dec = smooth_py(bgr, gray_dec)
        h, w = gray.shape
        print(f"{name:12s} {w:3d}x{h:<3d} edge pixels {int(np.sum(edges > 0)):4d}, smoothed "
              f"{int(np.sum(np.any(smooth != bgr, axis=2))):4d}; imread(f, 0) differs in "
              f"{int(np.sum(gray != gray_dec))} gray, {int(np.sum(edges != edges_dec))} edge, "
              f"{int(np.sum(np.any(smooth != smooth_dec, axis=2)))} output pixels")
    print(f"wrote {len(images)} fixtures to {args.out}")
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
