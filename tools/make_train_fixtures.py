#!/usr/bin/python3
"""Write the training engine's parity fixtures, tests/data/train/, from the PyTorch step.

    /usr/bin/python3 tools/make_train_fixtures.py [--threads 2] [--no-checks]

Follows "Parity fixtures" in doc/training-engine.md. D and VGG19 are not committed: they
are made from the doc's deterministic formula (splitmix64 / hash_v, here in numpy
uint64 and float64, bit for bit what C's double arithmetic gives) into a temporary
directory, VGG both as torchvision .safetensors and as a Keras-layout .h5; G is the
released hayao style. tools/train_reference.py's CLI runs every case there, and only
small summaries of its outputs are committed. tests/data/train/README.md (written here)
lists the files.

Before writing, the script checks its own pieces and prints the numbers: hash values
against plain Python integers, torch's Adam against the doc's formula in float64, the
training G against tools/cartoongan_torch.py's forward, the .h5 VGG against the
.safetensors VGG, determinism, and the size of the gradients that are analytically
zero (conv biases feeding straight into a norm), which the C test needs for its
tolerances: Adam's first step turns even noise-level gradients into +-lr updates.
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cartoongan_torch as cg  # noqa: E402
import train_reference as tr  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
OUT = os.path.join(ROOT, "tests", "data", "train")
HAYAO = os.path.join(SHARED, "weights", "cartoongan", "hayao")
K = 64  # summary sample count (doc: "Summaries")

# Fixed inputs: two images each, 256x256 JPEGs box-averaged to 32x32.
IMAGES = {"photo": ("photos/small_train_set", ("0.jpg", "1.jpg")),
          "cartoon": ("cartoon/anime", ("0.jpg", "1.jpg")),
          "smooth": ("cartoon/anime_smooth", ("0.jpg", "1.jpg"))}

# Learning rates far below the defaults: Adam moves every parameter by about lr per step
# whatever its gradient's size, so at the defaults the elements whose gradients are at
# float noise level (their sign differs between two correct implementations) already
# make the two Gs of step 2 differ by ~lr everywhere, and Adam, which normalises each
# element, carries that into every later update: three steps at 8e-5 differ by tens of
# percent. At 1e-6 the steps stay within rounding of one trajectory, and the test can
# check the updates tightly wherever the gradient's sign is determined.
GAN_ARGS = "--steps 3 --lr-g 1e-6 --lr-d 5e-7 --content-weight 10"
# case: (VGG file kind, train_step flags other than file paths)
CASES = {
    "init_st": ("safetensors", "--phase init --steps 3 --lr-g 2e-6 --content-weight 10"),
    "init_h5": ("h5", "--phase init --steps 3 --lr-g 2e-6 --content-weight 10"),
    "gan_lsgan_batch_st": ("safetensors", "--phase gan --gan-loss lsgan --d-norm batch "
                           + GAN_ARGS + " --style-weight 0"),
    "gan_bce_batch_h5": ("h5", "--phase gan --gan-loss bce --d-norm batch "
                         + GAN_ARGS + " --style-weight 0"),
    "gan_lsgan_instance_h5_style": ("h5", "--phase gan --gan-loss lsgan --d-norm instance "
                                    + GAN_ARGS + " --style-weight 1"),
    "gan_bce_instance_st": ("safetensors", "--phase gan --gan-loss bce --d-norm instance "
                            + GAN_ARGS + " --style-weight 0"),
}

# Conv biases that feed straight into an instance / batch norm: the norm subtracts the
# per-channel mean, so their gradient is analytically zero.
G_ZERO_BIAS = (["conv01_1", "conv02_2", "conv03_2"]
               + ["conv%02d_%d" % (i, k) for i in range(4, 12) for k in (1, 2)]
               + ["deconv01_2", "deconv02_2"])
D_ZERO_BIAS = ["conv02_2", "conv03_2", "conv04"]


# ---------------------------------------------------------------- deterministic values

def splitmix64(x):
    """The doc's splitmix64 on a uint64 array, wrapping mod 2^64 as C does."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_v(seed, count):
    """hash_v(seed, i) for i = 0..count-1, float64: 2 * ((r >> 40) + 0.5) / 2^24 - 1,
    every step exact or one IEEE double rounding, as in C."""
    with np.errstate(over="ignore"):
        x = (np.uint64(seed) << np.uint64(32)) + np.arange(count, dtype=np.uint64)
    u = ((splitmix64(x) >> np.uint64(40)).astype(np.float64) + 0.5) / float(1 << 24)
    return 2.0 * u - 1.0


def det_tensor(seed, shape, a):
    """(float)(hash_v(seed, i) * a) in C order."""
    return (hash_v(seed, int(np.prod(shape))) * a).astype(np.float32).reshape(shape)


def det_d():
    """D's tensors in the doc's order: seed 1000 + t; conv weight a = 1 / sqrt(in * 9),
    conv bias a = 0.1, norm weight (float)(1 + 0.1 hash_v), norm bias a = 0.1."""
    shapes = {k: tuple(v.shape) for k, v in tr.Discriminator().state_dict().items()}
    out = {}
    for t, name in enumerate(tr.D_ORDER):
        shape, seed = shapes[name], 1000 + t
        if name.startswith("conv") and name.endswith(".weight"):
            out[name] = det_tensor(seed, shape, 1.0 / math.sqrt(shape[1] * 9))
        elif name.startswith("norm") and name.endswith(".weight"):
            out[name] = (1.0 + 0.1 * hash_v(seed, shape[0])).astype(np.float32)
        else:
            out[name] = det_tensor(seed, shape, 0.1)
    return out


def det_vgg():
    """{features.N.weight/bias}: layer l, weight seed 2000 + l, a = sqrt(6 / (in * 9));
    bias seed 2100 + l, a = 0.05."""
    out = {}
    for l, (idx, _, cin, cout, _) in enumerate(tr.VGG_LAYERS):
        out["features.%d.weight" % idx] = det_tensor(2000 + l, (cout, cin, 3, 3),
                                                     math.sqrt(6.0 / (cin * 9)))
        out["features.%d.bias" % idx] = det_tensor(2100 + l, (cout,), 0.05)
    return out


def write_keras_h5(path, tv):
    """The same VGG as Keras's vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 lays it
    out (up to block4_pool): root attribute layer_names; one group per layer whose
    attribute weight_names (fixed-length byte strings; an empty float64 array for layers
    without weights, as Keras writes an empty list) names its datasets, kernel
    [3][3][in][out] then bias."""
    import h5py
    layers = ["input_1"]
    for _, name, _, _, pool in tr.VGG_LAYERS:
        layers.append(name)
        if pool:
            layers.append(name.split("_")[0] + "_pool")
    layers.append("block4_pool")
    by_name = {name: idx for idx, name, _, _, _ in tr.VGG_LAYERS}
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.0.8"
        for name in layers:
            g = f.create_group(name)
            if name not in by_name:
                g.attrs["weight_names"] = np.zeros(0, dtype=np.float64)
                continue
            idx = by_name[name]
            wn = [("%s_W_1:0" % name).encode(), ("%s_b_1:0" % name).encode()]
            g.attrs["weight_names"] = np.array(wn)
            g.create_dataset(wn[0].decode(), data=np.ascontiguousarray(
                tv["features.%d.weight" % idx].transpose(2, 3, 1, 0)))
            g.create_dataset(wn[1].decode(), data=tv["features.%d.bias" % idx])


# ---------------------------------------------------------------- summaries, inputs

def summary_indices(t, count):
    j = np.arange(K, dtype=np.uint64)
    if count <= K:
        return (j % np.uint64(count)).astype(np.int64)
    with np.errstate(over="ignore"):
        s = splitmix64(np.uint64(t) * np.uint64(1000003) + j)
    return (s % np.uint64(count)).astype(np.int64)


def summarize(arrays):
    """float32 [T][2 + K]: L2 norm (computed in float64), max |value|, K sampled values."""
    out = np.zeros((len(arrays), 2 + K), dtype=np.float32)
    for t, a in enumerate(arrays):
        v = np.asarray(a, dtype=np.float32).ravel()
        out[t, 0] = np.sqrt(np.sum(v.astype(np.float64) ** 2))
        out[t, 1] = np.max(np.abs(v))
        out[t, 2:] = v[summary_indices(t, v.size)]
    return out


def load_inputs():
    """{photo, cartoon, smooth}: float32 [2][3][32][32], BGR, [-1, 1]; each image is the
    8x8 box average (float64) of the 256x256 RGB, plus up to +-1 level of deterministic
    noise (hash_v with seed 3000 + 10 * input + image, one value per RGB element in C
    order), v / 255 * 2 - 1, clipped to [-1, 1].

    Why the noise: box averages of 8-bit photos have exactly flat patches, on which
    PyTorch's direct convolutions give exactly tied values in VGG19's max pools, while
    Winograd convolutions (the C engine's) give values a rounding apart. At a tie any
    choice is a correct subgradient, but PyTorch's and ours differ there, and the
    difference (measured 0.3 % of VGG's input gradient on these inputs) would hide real
    errors behind the bars. Real photos rarely tie exactly; the noise keeps the fixtures
    off ties so that the test's bars can stay tight."""
    from PIL import Image
    out = {}
    for key, (folder, files) in IMAGES.items():
        batch = []
        for fn in files:
            rgb = np.asarray(Image.open(os.path.join(SHARED, "data", folder, fn))
                             .convert("RGB"), dtype=np.float64)
            if rgb.shape != (256, 256, 3):
                raise ValueError("%s/%s: %s, expected 256x256 RGB" % (folder, fn, rgb.shape))
            small = rgb.reshape(32, 8, 32, 8, 3).mean(axis=(1, 3))
            seed = 3000 + 10 * list(IMAGES).index(key) + files.index(fn)
            small = np.clip(small + hash_v(seed, small.size).reshape(small.shape), 0.0, 255.0)
            batch.append((small / 255.0 * 2.0 - 1.0)[:, :, ::-1].transpose(2, 0, 1))
        out[key] = np.ascontiguousarray(np.stack(batch), dtype=np.float32)
    return out


# ---------------------------------------------------------------- self-checks

def check_hash():
    """numpy's vectorised values against plain Python integers and floats (IEEE double,
    like C); returns the number of mismatching values (must be 0)."""
    M = (1 << 64) - 1

    def sm(x):
        z = (x + 0x9E3779B97F4A7C15) & M
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        return z ^ (z >> 31)

    def f32(x):
        return struct.unpack("<f", struct.pack("<f", x))[0]

    bad = 0
    vgg, d = det_vgg(), det_d()
    for l, (idx, _, cin, cout, _) in enumerate(tr.VGG_LAYERS):
        w = vgg["features.%d.weight" % idx].ravel()
        a = math.sqrt(6.0 / (cin * 9))
        for i in (0, 1, 7, w.size // 2, w.size - 1):
            hv = 2.0 * (((sm(((2000 + l) << 32) + i) >> 40) + 0.5) / 2.0 ** 24) - 1.0
            bad += f32(hv * a) != float(w[i])
    for t, name in enumerate(tr.D_ORDER):
        v = d[name].ravel()
        for i in (0, v.size - 1):
            hv = 2.0 * (((sm(((1000 + t) << 32) + i) >> 40) + 0.5) / 2.0 ** 24) - 1.0
            if name.startswith("norm") and name.endswith(".weight"):
                ref = f32(1.0 + 0.1 * hv)
            elif name.endswith(".weight"):
                ref = f32(hv * (1.0 / math.sqrt(d[name].shape[1] * 9)))
            else:
                ref = f32(hv * 0.1)
            bad += ref != float(v[i])
    for t in (0, 5, 93):
        idx = summary_indices(t, 1000)
        bad += sum(int(idx[j]) != sm(t * 1000003 + j) % 1000 for j in range(K))
    return bad


def check_adam():
    """torch.optim.Adam (float32 and float64 parameters) against the doc's formula in
    float64, over 3 steps of gradients spanning 1e-12..1 (tiny ones near eps too)."""
    rng = np.random.default_rng(7)
    p0 = rng.standard_normal(4000)
    grads = [rng.standard_normal(4000) * 10.0 ** rng.uniform(-12, 0, 4000) for _ in range(3)]
    lr, (b1, b2), eps = 2e-4, tr.BETAS, tr.ADAM_EPS
    res = {}
    for dt in (torch.float32, torch.float64):
        p = torch.tensor(p0, dtype=dt, requires_grad=True)
        opt = tr.adam([p], lr)
        ref = p.detach().double().numpy().copy()
        m = np.zeros_like(ref)
        v = np.zeros_like(ref)
        worst = worst_delta = 0.0
        for t, g in enumerate(grads, 1):
            p.grad = torch.tensor(g, dtype=dt)
            before = p.detach().double().numpy().copy()
            opt.step()
            gg = p.grad.double().numpy()  # the gradient as torch saw it (rounded to dt)
            m = b1 * m + (1 - b1) * gg
            v = b2 * v + (1 - b2) * gg * gg
            upd = lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
            ref = before - upd  # from torch's own previous value (no drift)
            got = p.detach().double().numpy()
            worst = max(worst, np.max(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-30)))
            worst_delta = max(worst_delta, np.max(np.abs((got - before) - (-upd))) / lr)
        res[str(dt).split(".")[1]] = (worst, worst_delta)
    return res


def check_g(tmp, inputs):
    """G from a safetensors round trip, in training mode on the batch, against
    cartoongan_torch's inference forward per sample; returns max |difference| (both
    float32, so a few ulps of the tanh output are possible, 0 expected)."""
    ref = cg.load_generator(HAYAO)
    path = os.path.join(tmp, "G.safetensors")
    g = tr.load_g(path)
    with torch.no_grad():
        y = g(torch.from_numpy(inputs["photo"])).numpy()
    diffs = [np.max(np.abs(y[i] - cg.forward_raw(ref, inputs["photo"][i])))
             for i in range(len(y))]
    # The released .npy directory loads to the same tensors as the safetensors file.
    same = all(np.array_equal(a, b) for a, b in zip(tr.state_numpy(tr.load_g(HAYAO), tr.g_names()).values(),
                                                    tr.state_numpy(g, tr.g_names()).values()))
    return max(diffs), same


def check_vgg(tmp, inputs):
    """The .h5 and .safetensors VGGs: identical weights after the transpose, identical
    features for the same preprocessed input; and each preprocessing as the doc says."""
    v_st = tr.load_vgg(os.path.join(tmp, "VGG.safetensors"))
    v_h5 = tr.load_vgg(os.path.join(tmp, "VGG.h5"))
    same_w = all(torch.equal(a, b) for a, b in zip(v_st.parameters(), v_h5.parameters()))
    x = torch.from_numpy(inputs["photo"])
    with torch.no_grad():
        pre = v_st.preprocess(x)
        feat_diff = float((v_st.features(pre) - v_h5.features(pre)).abs().max())
        pre_h5 = v_h5.preprocess(x)
        feat_diff_h5 = float((v_st.features(pre_h5) - v_h5.features(pre_h5)).abs().max())
    # Preprocessing against numpy float64 versions of the doc's formulas.
    xn = inputs["photo"].astype(np.float64)
    tv = ((xn[:, ::-1] + 1) / 2 - np.array(tr.TV_MEAN).reshape(1, 3, 1, 1)) \
        / np.array(tr.TV_STD).reshape(1, 3, 1, 1)
    caffe = (xn + 1) / 2 * 255 - np.array(tr.CAFFE_MEAN_BGR).reshape(1, 3, 1, 1)
    return (same_w, feat_diff, feat_diff_h5,
            float(np.max(np.abs(pre.numpy() - tv))), float(np.max(np.abs(pre_h5.numpy() - caffe))))


def zero_grad_report(case, grads_g, grads_d, delta_g, delta_d, lr_g, lr_d):
    """Magnitudes of the analytically zero bias gradients: max |g_b| over the listed
    biases, max over them of ||g_b|| / ||g_w|| (w the same conv's weight), and the
    largest |delta| / lr those biases got from Adam over the steps."""
    lines = []
    for net, names, grads, delta, lr in (("G", G_ZERO_BIAS, grads_g, delta_g, lr_g),
                                         ("D", D_ZERO_BIAS, grads_d, delta_d, lr_d)):
        if grads is None:
            continue
        gmax = max(float(np.max(np.abs(grads[n + ".bias"]))) for n in names)
        rel = max(float(np.linalg.norm(grads[n + ".bias"]) / np.linalg.norm(grads[n + ".weight"]))
                  for n in names)
        wnorm = min(float(np.linalg.norm(grads[n + ".weight"])) for n in names)
        others = [k for k in grads if k.endswith(".bias") and k[:-5] not in names]
        omin = min(float(np.linalg.norm(grads[k])) for k in others)
        dmax = max(float(np.max(np.abs(delta[n + ".bias"]))) for n in names) / lr
        lines.append("  %s %s: zero-grad biases max|g| %.3g, max ||g_b||/||g_w|| %.3g "
                     "(min ||g_w|| %.3g; smallest other bias grad norm %.3g); "
                     "their max |delta|/lr after 3 steps %.3g"
                     % (case, net, gmax, rel, wnorm, omin, dmax))
    return lines


# ---------------------------------------------------------------- cases

def run_case(tmp, name, vgg_kind, flags, threads):
    out = os.path.join(tmp, "out_" + name)
    g = os.path.join(tmp, "G.safetensors") if vgg_kind == "safetensors" else HAYAO
    argv = ["--g", g, "--vgg", os.path.join(tmp, "VGG." + vgg_kind),
            "--photo", os.path.join(tmp, "photo.npy"), "--threads", str(threads),
            "--out", out] + flags.split()
    if "--phase gan" in flags:
        argv += ["--d", os.path.join(tmp, "D.safetensors"),
                 "--cartoon", os.path.join(tmp, "cartoon.npy"),
                 "--smooth", os.path.join(tmp, "smooth.npy")]
    tr.main(argv)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-checks", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    inputs = load_inputs()
    tmp = tempfile.mkdtemp(prefix="train_fixtures_")
    try:
        g0 = tr.state_numpy(cg.load_generator(HAYAO), tr.g_names())
        d0 = det_d()
        vgg = det_vgg()
        tr.write_safetensors(os.path.join(tmp, "G.safetensors"), g0)
        tr.write_safetensors(os.path.join(tmp, "D.safetensors"), d0)
        tr.write_safetensors(os.path.join(tmp, "VGG.safetensors"), vgg)
        write_keras_h5(os.path.join(tmp, "VGG.h5"), vgg)
        for k, v in inputs.items():
            np.save(os.path.join(tmp, k + ".npy"), v)

        if not a.no_checks:
            print("check hash: %d mismatches against plain Python (C-like) arithmetic"
                  % check_hash())
            for dt, (rel, dl) in check_adam().items():
                print("check adam %s: max |torch - formula| / |p| = %.3g, "
                      "max |torch delta - formula delta| / lr = %.3g" % (dt, rel, dl))
            gd, same = check_g(tmp, inputs)
            print("check G: training G (safetensors, batch 2) vs cartoongan_torch.forward_raw"
                  " max |diff| = %.3g; .npy dir and .safetensors load identical: %s"
                  % (gd, same))
            same_w, fd, fd2, ptv, pcf = check_vgg(tmp, inputs)
            print("check VGG: h5 == safetensors weights: %s; features max |diff| on the same"
                  " preprocessed input: %.3g (torchvision-preprocessed), %.3g (caffe-"
                  "preprocessed); preprocessing vs float64 formula: torchvision %.3g, caffe %.3g"
                  % (same_w, fd, fd2, ptv, pcf))

        os.makedirs(OUT, exist_ok=True)
        for k, v in inputs.items():
            np.save(os.path.join(OUT, k + ".npy"), v)
        reports = []
        for name, (vgg_kind, flags) in CASES.items():
            out = run_case(tmp, name, vgg_kind, flags, a.threads)
            if not a.no_checks and name == "gan_bce_batch_h5":
                again = run_case(tmp, name + "_again", vgg_kind, flags, a.threads)
                same = all(open(os.path.join(out, f), "rb").read()
                           == open(os.path.join(again, f), "rb").read()
                           for f in os.listdir(out))
                print("check determinism: %s run twice, outputs identical: %s" % (name, same))
            case_dir = os.path.join(OUT, name)
            os.makedirs(case_dir, exist_ok=True)
            with open(os.path.join(case_dir, "args.txt"), "w") as f:
                f.write("vgg=%s\n%s\n" % (vgg_kind, flags))
            shutil.copy(os.path.join(out, "losses.json"), case_dir)
            gan = "--phase gan" in flags
            gg = tr.read_safetensors(os.path.join(out, "grad_g.safetensors"))
            g1 = tr.read_safetensors(os.path.join(out, "g.safetensors"))
            dg = {k: g1[k] - g0[k] for k in tr.g_names()}
            np.save(os.path.join(case_dir, "grad_g.npy"), summarize([gg[k] for k in tr.g_names()]))
            np.save(os.path.join(case_dir, "delta_g.npy"), summarize([dg[k] for k in tr.g_names()]))
            gd = dd = None
            if gan:
                gd = tr.read_safetensors(os.path.join(out, "grad_d.safetensors"))
                d1 = tr.read_safetensors(os.path.join(out, "d.safetensors"))
                dd = {k: d1[k] - d0[k] for k in tr.D_ORDER}
                np.save(os.path.join(case_dir, "grad_d.npy"), summarize([gd[k] for k in tr.D_ORDER]))
                np.save(os.path.join(case_dir, "delta_d.npy"), summarize([dd[k] for k in tr.D_ORDER]))
            lr = dict(zip(flags.split()[::2], flags.split()[1::2]))
            reports += zero_grad_report(name, gg, gd, dg, dd, float(lr["--lr-g"]),
                                        float(lr.get("--lr-d", 1)))
            with open(os.path.join(case_dir, "losses.json")) as f:
                print("%s: %s" % (name, json.dumps(json.load(f), sort_keys=True)))
        if not a.no_checks:
            print("check zero gradients (analytically zero bias gradients):")
            print("\n".join(reports))
    finally:
        shutil.rmtree(tmp)
    files = [os.path.join(r, f) for r, _, fs in os.walk(OUT) for f in fs]
    print("%s: %d files, %d bytes" % (os.path.relpath(OUT, ROOT), len(files),
                                      sum(os.path.getsize(f) for f in files)))


if __name__ == "__main__":
    main()
