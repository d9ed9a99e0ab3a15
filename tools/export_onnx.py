#!/usr/bin/python3
"""Export the PyTorch reference generator (cartoongan_torch.py) to ONNX for the benchmark.

    /usr/bin/python3 tools/export_onnx.py [--style hayao] [--weights DIR] [--out FILE]
                                          [--norm instancenorm|ops] [--opset 13]

Writes build/onnx/<style>.onnx: input "input", BGR in [-1,1], float32 [1,3,H,W]; output
"output", the tanh output [1,3,H',W']; H and W are dynamic, so one file serves every size.
The graph is the reference's: reflection padding exports as Pad mode=reflect, instance
norm as InstanceNormalization with epsilon 1e-9 (--norm instancenorm, the default) or as
the reference's own ReduceMean/Sub/Pow/Sqrt/Div ops (--norm ops); ONNX Runtime 1.30 runs
both in about the same time.

Checks after the export, and fails if one does not hold:
- the graph (read with a small protobuf reader, no onnx package needed): 18 Pad nodes,
  all mode=reflect, and 21 instance norms with epsilon 1e-9 (as float32), dynamic sides;
- torch: the export's module (instance norm as torch.nn.functional.instance_norm) against
  the reference module on small random inputs of two sizes;
- ONNX Runtime (bench/ort_bench.mjs --check, when node and node_modules/onnxruntime-node
  are there): the .onnx file against the reference's outputs on those inputs. The inputs
  and expected outputs are kept next to the model (<style>.check.json and .f32 files), so
  `node bench/ort_bench.mjs --check build/onnx/<style>.onnx` can rerun it later.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import warnings

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import cartoongan_torch as cg  # noqa: E402

CHECK_SIZES = ((36, 44), (28, 20))  # (h, w) of the random check inputs: two sizes, not square
N_PAD, N_NORM = 18, 21  # reflect pads (1 + 16 + 1) and instance norms (3 + 16 + 2)


class FusedInstanceNorm(torch.nn.Module):
    """The reference's InstanceNorm as torch's instance_norm (exports as InstanceNormalization)."""

    def __init__(self, ref):
        super().__init__()
        self.ref = ref

    def forward(self, x):
        return F.instance_norm(x, weight=self.ref.scale, bias=self.ref.shift, eps=self.ref.eps)


def export_module(model, norm):
    if norm == "ops":
        return model
    for name, m in list(model.named_children()):
        if isinstance(m, cg.InstanceNorm):
            setattr(model, name, FusedInstanceNorm(m))
    return model


def pad_symbolic(g, x, pad, mode, value):
    """aten::pad (torch.nn.functional.pad) with mode reflect as one Pad node with constant
    pads: torch 1.13's own symbolic computes the pads with Slice/Concat/Transpose/... ops
    that its constant folding cannot fold (ONNX Runtime would fold them at load time)."""
    from torch.onnx import symbolic_helper, symbolic_opset11
    if symbolic_helper._parse_arg(mode, "s") != "reflect":
        return symbolic_opset11.pad(g, x, pad, mode, value)
    left, right, top, bottom = symbolic_helper._get_const(pad, "is", "pad")
    pads = torch.tensor([0, 0, top, left, 0, 0, bottom, right], dtype=torch.int64)
    return g.op("Pad", x, g.op("Constant", value_t=pads), mode_s="reflect")


# --- a minimal protobuf reader: enough of ModelProto to list the graph's nodes ---------------

def _varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return v, i


def _fields(b):
    """Yields (field number, wire type, value) of one message; value is int or bytes."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        f, t = key >> 3, key & 7
        if t == 0:
            v, i = _varint(b, i)
        elif t == 1:
            v, i = b[i:i + 8], i + 8
        elif t == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif t == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("unsupported protobuf wire type %d" % t)
        yield f, t, v


def read_graph(path):
    """-> (opset, [(op_type, {attr: value})], {input/output name: [dim]}) of an .onnx file."""
    with open(path, "rb") as fh:
        model = memoryview(fh.read())
    opset, graph = None, None
    for f, _, v in _fields(model):
        if f == 7:  # ModelProto.graph
            graph = v
        elif f == 8:  # ModelProto.opset_import (OperatorSetIdProto: 1 domain, 2 version)
            d = dict((ff, vv) for ff, _, vv in _fields(v))
            if not bytes(d.get(1, b"")):
                opset = d.get(2)
    nodes, io = [], {}
    for f, _, v in _fields(graph):
        if f == 1:  # GraphProto.node (NodeProto: 4 op_type, 5 attribute)
            op, attrs = None, {}
            for ff, _, vv in _fields(v):
                if ff == 4:
                    op = bytes(vv).decode()
                elif ff == 5:  # AttributeProto: 1 name, 2 f, 3 i, 4 s
                    a = {fa: va for fa, _, va in _fields(vv)}
                    name = bytes(a[1]).decode()
                    if 2 in a:
                        attrs[name] = struct.unpack("<f", bytes(a[2]))[0]
                    elif 4 in a:
                        attrs[name] = bytes(a[4]).decode()
                    elif 3 in a:
                        attrs[name] = a[3]
            nodes.append((op, attrs))
        elif f in (11, 12):  # GraphProto.input / output (ValueInfoProto: 1 name, 2 type)
            vi = {fv: vv for fv, _, vv in _fields(v)}
            tensor = {ft: vt for ft, _, vt in _fields(vi[2])}[1]  # TypeProto.tensor_type
            shape = {fs: vs for fs, _, vs in _fields(tensor)}.get(2, b"")  # TensorTypeProto.shape
            dims = []
            for _, _, d in _fields(shape):  # TensorShapeProto.dim: 1 dim_value, 2 dim_param
                dd = {fd: vd for fd, _, vd in _fields(d)}
                dims.append(dd[1] if 1 in dd else bytes(dd.get(2, b"?")).decode())
            io[bytes(vi[1]).decode()] = dims
    return opset, nodes, io


def check_graph(path, norm):
    opset, nodes, io = read_graph(path)
    ops = {}
    for op, _ in nodes:
        ops[op] = ops.get(op, 0) + 1
    print("graph: opset %s, %d nodes: %s" % (opset, len(nodes),
          ", ".join("%s %d" % kv for kv in sorted(ops.items()))))
    print("inputs/outputs: %s" % io)
    errors = []
    pads = [a for op, a in nodes if op == "Pad"]
    if len(pads) != N_PAD or any(a.get("mode") != "reflect" for a in pads):
        errors.append("expected %d Pad nodes with mode=reflect, got %s"
                      % (N_PAD, [a.get("mode") for a in pads]))
    eps32 = float(np.float32(cg.EPS))
    if norm == "instancenorm":
        ins = [a for op, a in nodes if op == "InstanceNormalization"]
        if len(ins) != N_NORM or any(a.get("epsilon") != eps32 for a in ins):
            errors.append("expected %d InstanceNormalization nodes with epsilon %g, got %s"
                          % (N_NORM, eps32, [a.get("epsilon") for a in ins]))
    elif ops.get("InstanceNormalization") or ops.get("Sqrt", 0) != N_NORM:
        errors.append("expected %d instance norms as ops (%d Sqrt), got %s" % (N_NORM, N_NORM, ops))
    for name in ("input", "output"):
        dims = io.get(name)
        if not dims or len(dims) != 4 or isinstance(dims[2], int) or isinstance(dims[3], int):
            errors.append("%s: expected dynamic height and width, got %s" % (name, dims))
    return errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--style", default="hayao", choices=cg.STYLES)
    ap.add_argument("--weights", help="style directory of .npy files "
                    "(default ../shared/weights/cartoongan/<style>)")
    ap.add_argument("--out", help="output file (default build/onnx/<style>.onnx)")
    ap.add_argument("--norm", default="instancenorm", choices=("instancenorm", "ops"))
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--no-ort-check", action="store_true", help="skip the ONNX Runtime check")
    a = ap.parse_args()
    weights = a.weights or os.path.join(ROOT, "..", "shared", "weights", "cartoongan", a.style)
    out = a.out or os.path.join(ROOT, "build", "onnx", a.style + ".onnx")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)

    ref = cg.load_generator(weights, threads=2)
    model = export_module(cg.load_generator(weights, threads=2), a.norm)
    tmp = out + ".tmp"
    # F.instance_norm always normalizes with the input's own statistics (as InstanceNorm
    # does): torch's warning about train=True in EVAL mode does not apply.
    warnings.filterwarnings("ignore", message="ONNX export mode is set to TrainingMode.EVAL")
    torch.onnx.register_custom_op_symbolic("aten::pad", pad_symbolic, a.opset)
    with torch.no_grad():
        torch.onnx.export(model, torch.zeros(1, 3, 64, 64), tmp, opset_version=a.opset,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {2: "height", 3: "width"},
                                        "output": {2: "out_height", 3: "out_width"}},
                          do_constant_folding=True)
    errors = check_graph(tmp, a.norm)

    # torch check, and the cases ONNX Runtime is checked on (kept next to the model).
    rng = np.random.default_rng(4)
    base = os.path.splitext(out)[0]
    cases = []
    for k, (h, w) in enumerate(CHECK_SIZES):
        x = rng.uniform(-1, 1, (1, 3, h, w)).astype(np.float32)
        y = cg.forward_raw(ref, x)
        y2 = cg.forward_raw(model, x)
        d = float(np.abs(y - y2).max())
        print("torch, export module vs reference, %dx%d: max |diff| %.3g" % (w, h, d))
        if d > 1e-5:
            errors.append("torch: export module differs from the reference by %.3g" % d)
        xin, yout = "%s.check%d.in.f32" % (base, k), "%s.check%d.out.f32" % (base, k)
        x.tofile(xin)
        y.astype(np.float32).tofile(yout)
        cases.append({"input": os.path.basename(xin), "input_shape": list(x.shape),
                      "output": os.path.basename(yout), "output_shape": list(y.shape)})
    with open(base + ".check.json", "w") as fh:
        json.dump({"style": a.style, "tolerance": 1e-4, "cases": cases}, fh, indent=1)
        fh.write("\n")
    if errors:
        os.remove(tmp)
        sys.exit("export_onnx: " + "; ".join(errors))
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
        sys.exit("export_onnx: ONNX Runtime check failed; %s removed" % out)


if __name__ == "__main__":
    main()
