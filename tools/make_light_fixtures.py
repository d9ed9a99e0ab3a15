#!/usr/bin/python3
"""Write tests/data/light/, the light generator's test fixtures (issue 13), deterministic.

    /usr/bin/python3 tools/make_light_fixtures.py [--threads N]

Every expected output is computed in float64 (from float32 inputs and weights) by
tools/light_reference.py's ops and network, then stored as float32: it is the exact answer
to within float32 rounding, so a float32 engine's error shows as itself. index.json lists
every case with its files, shapes and parameters; all arrays are float32 .npy, C order,
little-endian, [C][H][W] without a batch dimension.

Per-op cases (random inputs and weights from numpy's default_rng(13)):
  dw_<tag>         depthwise 3x3, TF SAME zero padding, no bias: _in [C][H][W], _w in TF's
                   layout [3][3][C][1], _out [C][ceil(H/s)][ceil(W/s)]; strides 1 and 2,
                   odd, even and mixed sides, and 1- and 2-pixel sides.
  in_<tag>         the global instance norm (statistics over C, H, W together, biased
                   variance, y = (x - mean) / (sqrt(var) + 1e-3) * gamma + beta): _in,
                   _gamma [1], _beta [1], _out. Cases: random; constant (var = 0 exactly:
                   y = beta); offset (mean 50, std 0.05: one-pass E[x^2] - E[x]^2 in
                   float32 fails it).
  shuffle_<tag>    channel shuffle out[2j + g] = in[g*C/2 + j]: _in, _out (C/2 odd, and C=2).
  up_<tag>         TF1 legacy bilinear x2: _in [C][H][W], _out [C][2H][2W] (odd, 1x1, 4x3).
  conv5_pad2       zero-pad 2 then 5x5 conv with bias, TF layout: _in, _w [5][5][Cin][Cout],
                   _b [Cout], _out.
  conv1x1          1x1 conv with bias: _in, _w [1][1][Cin][Cout], _b, _out; conv1x1_nobias
                   the same without _b.
Whole network with the real weights of both styles (../shared/weights/cartoongan_light/):
  input_<w>x<h>.png          RGB crops of original_test_set/in3.png (and 1x1, 5x3 edge cases)
  <style>_<w>x<h>_raw.npy    tanh output [3][h][w] (RGB, cropped to the input's size)
  <style>_<w>x<h>.png        uint8 output: ((y + 1) * 127.5) in float32, truncated
  paprika_9x7_stage_<k>.npy  paprika's intermediate tensors on input_9x7.png (uncropped):
                             flat_conv1 [96][7][9], down_conv1 [192][4][5], down_conv2
                             [384][2][3], residual_blocks [384][2][3], up_conv1 [192][4][6],
                             up_conv2 [96][8][12], final (tanh) [3][8][12].
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import light_reference as L  # noqa: E402

ROOT = os.path.dirname(HERE)
SHARED = os.path.join(ROOT, "..", "shared")
OUT = os.path.join(ROOT, "tests", "data", "light")
# Crops of original_test_set/in3.png (258x254, lossless): (x, y, w, h), textured regions.
CROPS = {"64x48": (96, 104, 64, 48), "37x29": (30, 150, 37, 29), "9x7": (120, 60, 9, 7),
         "5x3": (200, 30, 5, 3), "1x1": (128, 128, 1, 1)}
D = torch.float64


def save(name, a):
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(a, dtype=np.float32))
    return {"file": name + ".npy", "shape": list(np.shape(a))}


def t64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float32)).to(D)


def make_ops(rng):
    rnd = lambda *s: rng.standard_normal(s).astype(np.float32)
    cases = []

    dws = {  # tag: (C, H, W, stride)
        "s1_7x9": (5, 7, 9, 1), "s1_6x4": (3, 6, 4, 1), "s1_1x1": (2, 1, 1, 1),
        "s2_9x7": (4, 9, 7, 2), "s2_8x10": (4, 8, 10, 2), "s2_7x8": (3, 7, 8, 2),
        "s2_1x2": (2, 1, 2, 2), "s2_2x3": (2, 2, 3, 2),
    }
    for tag, (c, h, w, s) in dws.items():
        x, wt = rnd(c, h, w), rnd(3, 3, c, 1) * np.float32(0.3)
        y = L.depthwise_same(t64(x)[None], t64(wt.transpose(2, 3, 0, 1)), s)[0].numpy()
        name = "dw_" + tag
        cases.append({"case": name, "op": "depthwise3x3_same", "stride": s,
                      "pads_tblr": list(L.same_pads(h, s) + L.same_pads(w, s)),
                      "in": save(name + "_in", x), "w": save(name + "_w", wt),
                      "out": save(name + "_out", y)})

    ins = {"random": rnd(6, 5, 7) * np.float32(2) + np.float32(0.5),
           "constant": np.full((3, 4, 5), 0.75, np.float32),
           "offset": np.float32(50) + rnd(4, 6, 5) * np.float32(0.05)}
    for tag, x in ins.items():
        g, b = rnd(1), rnd(1)
        y = L.global_in(t64(x)[None], t64(g), t64(b))[0].numpy()
        name = "in_" + tag
        cases.append({"case": name, "op": "global_instance_norm", "eps": L.EPS,
                      "in": save(name + "_in", x), "gamma": save(name + "_gamma", g),
                      "beta": save(name + "_beta", b), "out": save(name + "_out", y)})

    for tag, shape in {"10x3x4": (10, 3, 4), "2x2x3": (2, 2, 3)}.items():
        x = rnd(*shape)
        name = "shuffle_" + tag
        cases.append({"case": name, "op": "channel_shuffle", "in": save(name + "_in", x),
                      "out": save(name + "_out", L.channel_shuffle(t64(x)[None])[0].numpy())})

    for tag, shape in {"3x5x7": (3, 5, 7), "2x1x1": (2, 1, 1), "2x4x3": (2, 4, 3)}.items():
        x = rnd(*shape)
        name = "up_" + tag
        cases.append({"case": name, "op": "upsample2_bilinear_tf1", "in": save(name + "_in", x),
                      "out": save(name + "_out", L.upsample2_legacy(t64(x)[None])[0].numpy())})

    x, wt, b = rnd(3, 7, 6), rnd(5, 5, 3, 4) * np.float32(0.2), rnd(4)
    y = F.conv2d(F.pad(t64(x)[None], (2, 2, 2, 2)), t64(wt.transpose(3, 2, 0, 1)), t64(b))[0].numpy()
    cases.append({"case": "conv5_pad2", "op": "conv5x5_zeropad2", "in": save("conv5_pad2_in", x),
                  "w": save("conv5_pad2_w", wt), "b": save("conv5_pad2_b", b),
                  "out": save("conv5_pad2_out", y)})
    x, wt, b = rnd(6, 5, 4), rnd(1, 1, 6, 5) * np.float32(0.4), rnd(5)
    for name, bias in (("conv1x1", b), ("conv1x1_nobias", None)):
        y = F.conv2d(t64(x)[None], t64(wt.transpose(3, 2, 0, 1)),
                     None if bias is None else t64(bias))[0].numpy()
        c = {"case": name, "op": "conv1x1", "in": save(name + "_in", x), "w": save(name + "_w", wt),
             "out": save(name + "_out", y)}
        if bias is not None:
            c["b"] = save(name + "_b", bias)
        cases.append(c)
    return cases


def naive_checks(cases):
    """Checks the stored per-op outputs against plain loops written from the definitions
    (independent of light_reference.py's tensor code)."""
    ld = lambda f: np.load(os.path.join(OUT, f["file"])).astype(np.float64)
    for c in cases:
        x, y = ld(c["in"]), ld(c["out"])
        if c["op"] == "depthwise3x3_same":
            w, s = ld(c["w"])[:, :, :, 0], c["stride"]
            ch, h, wd = x.shape
            (pt, _), (pl, _) = L.same_pads(h, s), L.same_pads(wd, s)
            e = np.zeros((ch, -(-h // s), -(-wd // s)))
            for k in range(ch):
                for i in range(e.shape[1]):
                    for j in range(e.shape[2]):
                        for a in range(3):
                            for b in range(3):
                                yy, xx = i * s + a - pt, j * s + b - pl
                                if 0 <= yy < h and 0 <= xx < wd:
                                    e[k, i, j] += x[k, yy, xx] * w[a, b, k]
        elif c["op"] == "global_instance_norm":
            m = x.sum() / x.size
            v = ((x - m) ** 2).sum() / x.size
            e = (x - m) / (np.sqrt(v) + 1e-3) * ld(c["gamma"])[0] + ld(c["beta"])[0]
        elif c["op"] == "channel_shuffle":
            half = x.shape[0] // 2
            e = np.stack([x[g * half + j] for j in range(half) for g in range(2)])
        elif c["op"] == "upsample2_bilinear_tf1":
            ch, h, wd = x.shape
            e = np.zeros((ch, 2 * h, 2 * wd))
            for i in range(2 * h):
                for j in range(2 * wd):
                    y0, x0 = i // 2, j // 2
                    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, wd - 1)
                    ly, lx = (i % 2) * 0.5, (j % 2) * 0.5
                    top = x[:, y0, x0] + (x[:, y0, x1] - x[:, y0, x0]) * lx
                    bot = x[:, y1, x0] + (x[:, y1, x1] - x[:, y1, x0]) * lx
                    e[:, i, j] = top + (bot - top) * ly
        else:
            continue
        d = np.abs(e - y).max()
        assert e.shape == y.shape and d < 1e-5, (c["case"], e.shape, y.shape, d)


def stages(model, x):
    """The paprika stage outputs of the network on x ([1][3][H][W] float64)."""
    out = {}
    m = model
    y = F.conv2d(x, m.w("flat_conv1/model/layer-1/kernel"), m.w("flat_conv1/model/layer-1/bias"),
                 padding=2)
    y = out["flat_conv1"] = F.relu(m.norm(y, "flat_conv1/model/layer-2"))
    y = out["down_conv1"] = m.down(y, "down_conv1")
    y = out["down_conv2"] = m.down(y, "down_conv2")
    for i in range(L.N_RES):
        y = m.basic(y, "residual_blocks/layer-%d/model" % i)
    out["residual_blocks"] = y
    for k in ("up_conv1", "up_conv2"):
        y = m.conv1x1(m.ops["up"](y), k + "/model/layer-0", bias=True)
        y = out[k] = m.basic(y, k + "/model/layer-1/model")
    y = F.conv2d(y, m.w("final_conv/layer-1/kernel"), m.w("final_conv/layer-1/bias"), padding=2)
    out["final"] = torch.tanh(y)
    full = m(x)
    assert torch.equal(full, out["final"])
    return out


def make_model(threads):
    if threads:
        torch.set_num_threads(threads)
    src = np.asarray(Image.open(os.path.join(SHARED, "data", "photos", "original_test_set",
                                             "in3.png")).convert("RGB"))
    inputs = {}
    for tag, (x, y, w, h) in CROPS.items():
        inputs[tag] = np.ascontiguousarray(src[y:y + h, x:x + w])
        Image.fromarray(inputs[tag]).save(os.path.join(OUT, "input_%s.png" % tag))
    cases = []
    for style in L.STYLES:
        tensors = L.read_checkpoint(os.path.join(SHARED, "weights", "cartoongan_light",
                                                 "light_%s_ckpt" % style))
        m64 = L.LightGenerator(tensors, D).eval()
        m32 = L.LightGenerator(tensors, torch.float32).eval()
        for tag, rgb in inputs.items():
            with torch.no_grad():
                y = L.forward_raw(m64, rgb)      # float64 network, cast to float32
                y32 = L.forward_raw(m32, rgb)    # torch float32, for the stated spread
            u8 = L.to_uint8(y)
            v = (y.astype(np.float32) + np.float32(1)) * np.float32(127.5)
            near = int(np.sum(np.abs(v - np.round(v)) < 2e-3))  # where +-1 is legitimate
            base = "%s_%s" % (style, tag)
            Image.fromarray(u8).save(os.path.join(OUT, base + ".png"))
            cases.append({
                "case": base, "style": style, "input": "input_%s.png" % tag,
                "weights": "weights/light_%s.safetensors" % style,
                "raw": save(base + "_raw", y), "uint8": base + ".png",
                "torch_float32_max_abs_diff": float(np.abs(y32 - y).max()),
                "torch_float32_uint8_mismatches": int(np.sum(L.to_uint8(y32) != u8)),
                "values_within_2e-3_of_a_uint8_step": near})
            if style == "paprika" and tag == "9x7":
                with torch.no_grad():
                    st = stages(m64, L.preprocess(rgb).to(D))
                cases[-1]["stages"] = {k: save("%s_stage_%s" % (base, k), v[0].numpy())
                                       for k, v in st.items()}
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):  # start clean: no stale cases
        os.remove(os.path.join(OUT, f))
    index = {
        "about": "light generator fixtures (issue 13), written by tools/make_light_fixtures.py; "
                 "expected outputs computed in float64, stored as float32; arrays [C][H][W]",
        "tolerances": {
            "ops": "max |got - out| <= 1e-5 * max(1, |out|); in_offset: 1e-3 (a float32 two-pass "
                   "norm with a sequential sum is 1.6e-4 off there, a one-pass E[x^2]-E[x]^2 0.1)",
            "raw": "max |got - raw| <= 1e-4 (torch float32 is within 3e-6 of these float64 values)",
            "stages": "max |got - stage| <= 1e-4 * max(1, |stage|)",
            "uint8": "every value within 1 of the PNG, and at most values_within_2e-3_of_a_uint8_step "
                     "values differ (those whose (y + 1) * 127.5 lies within 2e-3 of an integer)"},
        "ops": make_ops(np.random.default_rng(13)),
        "network": make_model(a.threads),
    }
    naive_checks(index["ops"])
    with open(os.path.join(OUT, "index.json"), "w") as fh:  # one case per line
        parts = []
        for k, v in index.items():
            if isinstance(v, list):
                body = ",\n".join("  " + json.dumps(c) for c in v)
                parts.append(" %s: [\n%s\n ]" % (json.dumps(k), body))
            else:
                parts.append(" %s: %s" % (json.dumps(k), json.dumps(v, indent=2).replace("\n", "\n ")))
        fh.write("{\n" + ",\n".join(parts) + "\n}\n")
    assert json.load(open(os.path.join(OUT, "index.json"))) == index
    files = sorted(os.listdir(OUT))
    print("%s: %d files, %d bytes" % (os.path.relpath(OUT, ROOT), len(files),
                                      sum(os.path.getsize(os.path.join(OUT, f)) for f in files)))
    for c in index["network"]:
        print("%-14s torch float32 vs float64: max |diff| %.2g, uint8 mismatches %d; "
              "values near a step %d" % (c["case"], c["torch_float32_max_abs_diff"],
                                         c["torch_float32_uint8_mismatches"],
                                         c["values_within_2e-3_of_a_uint8_step"]))


if __name__ == "__main__":
    main()
