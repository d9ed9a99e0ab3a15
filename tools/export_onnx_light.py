#!/usr/bin/python3
"""Export the light generator's PyTorch port (light_reference.py) to ONNX for the benchmark.

    /usr/bin/python3 tools/export_onnx_light.py [--style paprika] [--ckpt DIR] [--out FILE]
                                                [--opset 13] [--no-ort-check]

Writes build/onnx/light_<style>.onnx: input "input", RGB (not BGR) in [-1,1], float32
[1,3,H,W]; output "output", the tanh output [1,3,4*ceil(H/4),4*ceil(W/4)] (not cropped);
H and W are dynamic. Weights are read from the TF2 checkpoint
(../shared/weights/cartoongan_light/light_<style>_ckpt by default) by light_reference.py.

How the ops export (one ONNX node where ONNX has the op, so ONNX Runtime gets its best shot):
- depthwise 3x3 with TF "SAME" padding: one Conv, group=C, auto_pad=SAME_UPPER (ONNX's
  SAME_UPPER is TF's SAME: total = max((ceil(n/s)-1)*s + k - n, 0), the odd one at the end);
- TF1 legacy bilinear x2: one Resize, mode=linear, coordinate_transformation_mode=asymmetric
  (x_in = x_out / 2, the next sample clamped at the edge);
- the global instance norm: ReduceMean, Sub, Pow, ReduceMean, Sqrt, Add, Div, Mul, Add (ONNX's
  InstanceNormalization is per channel with eps inside the sqrt: not this op);
- channel shuffle: Reshape, Transpose, Reshape (to the input's Shape); the 5x5 convolutions:
  Conv with pads 2; the halves of the shuffle units: Slice with constant bounds.

Checks after the export, and fails if one does not hold:
- the graph (read with export_onnx.py's protobuf reader, no onnx package needed): 44 Conv,
  14 of them depthwise with auto_pad SAME_UPPER; 2 Resize linear/asymmetric; 39 Sqrt (the
  norms); dynamic sides;
- ONNX Runtime (bench/ort_bench.mjs --check, when node and node_modules/onnxruntime-node are
  there): the .onnx file against light_reference.py's outputs on two random inputs of odd
  and even sides, kept next to the model (<base>.check.json and .f32 files), so
  `node bench/ort_bench.mjs --check build/onnx/light_<style>.onnx` can rerun it later.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import light_reference as L  # noqa: E402
from export_onnx import read_graph  # noqa: E402

CHECK_SIZES = ((29, 37), (44, 30))  # (h, w): odd and even sides, not multiples of 4
N_CONV, N_DW, N_RESIZE, N_NORM = 44, 14, 2, 39


class DepthwiseSame(torch.autograd.Function):
    """light_reference.depthwise_same in torch; one Conv with auto_pad=SAME_UPPER in ONNX."""

    @staticmethod
    def forward(ctx, x, w, stride):
        top, bottom = L.same_pads(int(x.shape[2]), stride)
        left, right = L.same_pads(int(x.shape[3]), stride)
        x = torch.nn.functional.pad(x, (left, right, top, bottom))
        return torch.nn.functional.conv2d(x, w, stride=stride, groups=int(x.shape[1]))

    @staticmethod
    def symbolic(g, x, w, stride):
        c = w.type().sizes()[0]
        return g.op("Conv", x, w, auto_pad_s="SAME_UPPER", group_i=c, kernel_shape_i=[3, 3],
                    strides_i=[stride, stride], dilations_i=[1, 1])


class Upsample2Legacy(torch.autograd.Function):
    """light_reference.upsample2_legacy in torch; one Resize (linear, asymmetric) in ONNX."""

    @staticmethod
    def forward(ctx, x):
        return L.upsample2_legacy(x)

    @staticmethod
    def symbolic(g, x):
        roi = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
        scales = g.op("Constant", value_t=torch.tensor([1, 1, 2, 2], dtype=torch.float32))
        return g.op("Resize", x, roi, scales, mode_s="linear",
                    coordinate_transformation_mode_s="asymmetric", nearest_mode_s="floor")


class ChannelShuffle(torch.autograd.Function):
    """light_reference.channel_shuffle in torch; in ONNX Reshape [0, 2, C/2, -1], Transpose,
    Reshape back to the input's shape (no shape arithmetic in the graph)."""

    @staticmethod
    def forward(ctx, x, c):
        return L.channel_shuffle(x)

    @staticmethod
    def symbolic(g, x, c):
        shape = g.op("Constant", value_t=torch.tensor([0, 2, c // 2, -1], dtype=torch.int64))
        y = g.op("Transpose", g.op("Reshape", x, shape), perm_i=[0, 2, 1, 3])
        return g.op("Reshape", y, g.op("Shape", x))


def export_ops():
    return {"in": L.global_in, "shuffle": lambda x: ChannelShuffle.apply(x, int(x.shape[1])),
            "dw": lambda x, w, s: DepthwiseSame.apply(x, w, s),
            "up": lambda x: Upsample2Legacy.apply(x)}


def check_graph(path):
    opset, nodes, io = read_graph(path)
    ops = {}
    for op, _ in nodes:
        ops[op] = ops.get(op, 0) + 1
    print("graph: opset %s, %d nodes: %s" % (opset, len(nodes),
          ", ".join("%s %d" % kv for kv in sorted(ops.items()))))
    print("inputs/outputs: %s" % io)
    errors = []
    convs = [a for op, a in nodes if op == "Conv"]
    dws = [a for a in convs if a.get("auto_pad") == "SAME_UPPER"]
    if len(convs) != N_CONV or len(dws) != N_DW:
        errors.append("expected %d Conv (%d SAME_UPPER), got %d (%d)" % (N_CONV, N_DW, len(convs), len(dws)))
    rs = [a for op, a in nodes if op == "Resize"]
    if len(rs) != N_RESIZE or any(a.get("mode") != "linear" or
                                  a.get("coordinate_transformation_mode") != "asymmetric" for a in rs):
        errors.append("expected %d Resize linear/asymmetric, got %s" % (N_RESIZE, rs))
    if ops.get("Sqrt", 0) != N_NORM or ops.get("InstanceNormalization"):
        errors.append("expected %d norms as ops (%d Sqrt), got %s" % (N_NORM, N_NORM, ops))
    for name in ("input", "output"):
        dims = io.get(name)
        if not dims or len(dims) != 4 or isinstance(dims[2], int) or isinstance(dims[3], int):
            errors.append("%s: expected dynamic height and width, got %s" % (name, dims))
    return errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--style", default="paprika", choices=L.STYLES)
    ap.add_argument("--ckpt", help="checkpoint folder "
                    "(default ../shared/weights/cartoongan_light/light_<style>_ckpt)")
    ap.add_argument("--out", help="output file (default build/onnx/light_<style>.onnx)")
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--no-ort-check", action="store_true", help="skip the ONNX Runtime check")
    a = ap.parse_args()
    ckpt = a.ckpt or os.path.join(ROOT, "..", "shared", "weights", "cartoongan_light",
                                  "light_%s_ckpt" % a.style)
    out = a.out or os.path.join(ROOT, "build", "onnx", "light_%s.onnx" % a.style)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    torch.set_num_threads(2)

    tensors = L.read_checkpoint(ckpt)
    ref = L.LightGenerator(tensors).eval()
    model = L.LightGenerator(tensors).eval()
    model.ops = export_ops()
    tmp = out + ".tmp"
    # The Functions' torch forward reads shapes as ints (their ONNX symbolics replace them,
    # so nothing shape-dependent is frozen); torch 1.13 deprecates g.op but has no successor.
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    with torch.no_grad():
        torch.onnx.export(model, torch.zeros(1, 3, 64, 64), tmp, opset_version=a.opset,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {2: "height", 3: "width"},
                                        "output": {2: "out_height", 3: "out_width"}},
                          do_constant_folding=True)
    errors = check_graph(tmp)

    # The cases ONNX Runtime is checked on (kept next to the model), with the reference's
    # outputs; the export module must give the same in torch.
    rng = np.random.default_rng(13)
    base = os.path.splitext(out)[0]
    cases = []
    for k, (h, w) in enumerate(CHECK_SIZES):
        x = rng.uniform(-1, 1, (1, 3, h, w)).astype(np.float32)
        with torch.no_grad():
            y = ref(torch.from_numpy(x)).numpy()
            d = float(np.abs(y - model(torch.from_numpy(x)).numpy()).max())
        print("torch, export module vs reference, %dx%d: max |diff| %.3g" % (w, h, d))
        if d > 0:
            errors.append("torch: export module differs from the reference by %.3g" % d)
        xin, yout = "%s.check%d.in.f32" % (base, k), "%s.check%d.out.f32" % (base, k)
        x.tofile(xin)
        y.astype(np.float32).tofile(yout)
        cases.append({"input": os.path.basename(xin), "input_shape": list(x.shape),
                      "output": os.path.basename(yout), "output_shape": list(y.shape)})
    with open(base + ".check.json", "w") as fh:
        json.dump({"style": "light_" + a.style, "tolerance": 1e-4, "cases": cases}, fh, indent=1)
        fh.write("\n")
    if errors:
        os.remove(tmp)
        sys.exit("export_onnx_light: " + "; ".join(errors))
    os.replace(tmp, out)
    print("wrote %s (%.1f MB)" % (out, os.path.getsize(out) / 1e6))

    runner = os.path.join(ROOT, "bench", "ort_bench.mjs")
    have_ort = os.path.isdir(os.path.join(ROOT, "node_modules", "onnxruntime-node"))
    if a.no_ort_check:
        return
    if not (shutil.which("node") and have_ort):
        print("ONNX Runtime check skipped (needs node and `npm install --ignore-scripts`); "
              "run later: node bench/ort_bench.mjs --check " + os.path.relpath(out, ROOT))
        return
    r = subprocess.run(["node", runner, "--check", out])
    if r.returncode:
        os.remove(out)
        sys.exit("export_onnx_light: ONNX Runtime check failed; %s removed" % out)


if __name__ == "__main__":
    main()
