#!/usr/bin/python3
"""PyTorch reference of the seed project's LIGHT CartoonGAN generator (issue 13).

Written from the network's facts (issue 13; the seed project's generator.py and layers.py,
mnicnc404/CartoonGan-tensorflow), not from its code. The C engine is tested against it.

    /usr/bin/python3 tools/light_reference.py --ckpt DIR --input photo.jpg --output out.png
        [--float-out out.npy] [--threads N] [--double] [--safetensors FILE]

DIR is a TF2 object checkpoint folder (light_{shinkai,paprika}_ckpt/). The weights are read
by this file's own tensor-bundle reader (LevelDB table of BundleEntryProto records, every
block's and every float tensor's masked CRC32C checked), independent of the C exporter.
--safetensors FILE also reads the exported file and checks that it holds the same tensors,
bit for bit, with the agreed names and TF layouts. --float-out writes the tanh output
[3][H][W] (RGB, before the uint8 conversion, already cropped) as float32 .npy.

The network (NCHW here; TF's NHWC layouts are converted at load time):
  input RGB, x / 127.5 - 1 (float32)
  flat_conv1:  zero-pad 2, conv 5x5 3->96 + bias, IN, ReLU
  down_conv1 (C=96), down_conv2 (C=192), DownShuffleUnitV2:
       left  = conv1x1(IN(dw3x3 s2 SAME(x)))
       right = conv1x1(IN(dw3x3 s2 SAME(ReLU(IN(conv1x1(x))))))
       shuffle(ReLU(IN(cat[left, right])))                    -> 2C channels
  8 x BasicShuffleUnitV2 (384): xl, xr = halves;
       f = ReLU(IN(conv1x1(IN(dw3x3 s1 SAME(ReLU(IN(conv1x1(xr))))))))
       shuffle(cat[xl, f])
  up_conv1: bilinear x2 (TF1 legacy), conv1x1 384->192 + bias, BasicShuffleUnitV2 (192)
  up_conv2: bilinear x2 (TF1 legacy), conv1x1 192->96 + bias,  BasicShuffleUnitV2 (96)
  final_conv: zero-pad 2, conv 5x5 96->3 + bias, tanh
  output: ((y + 1) * 127.5) in float32, truncated to uint8; the network's output is
  4*ceil(H/4) x 4*ceil(W/4), cropped to the input's H x W (top-left).
All 1x1 convolutions inside the shuffle units have no bias.

Exact op definitions (what the C engine must match):
  IN (keras-contrib InstanceNormalization, axis=None, epsilon=1e-3), per image:
       mean = sum(x) / (C*H*W)                         over C, H and W together
       var  = sum((x - mean)^2) / (C*H*W)              biased (population) variance
       y    = (x - mean) / (sqrt(var) + 1e-3) * gamma + beta    (eps added to the STD)
     gamma and beta are scalars (shape [1]).
  channel shuffle of C channels: out[2j + g] = in[g*C/2 + j]  (g in {0,1}, j < C/2)
  depthwise 3x3 SAME, stride s, side n: out = ceil(n/s); total = max((out-1)*s + 3 - n, 0);
     pad floor(total/2) before, the rest after (s=1: 1/1; s=2: even n 0/1, odd n 1/1).
  bilinear x2, TF1 legacy (align_corners=False, half_pixel_centers=False), per axis:
     out[2i] = in[i], out[2i+1] = a + (b - a) * 0.5 with a = in[i], b = in[min(i+1, n-1)];
     horizontal first, then vertical (TF's top/bottom lerp order).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

STYLES = ("shinkai", "paprika")
EPS = 1e-3
WIDTH = 96
N_RES = 8
N_TENSORS = 126
N_PARAMS = 878433
SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


# --- CRC32C (Castagnoli), and LevelDB's / TF's "masked" form ---------------------------------

def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data, crc=0):
    """CRC-32C of bytes (reflected polynomial 0x82F63B78), continuing from crc."""
    t = _CRC_TABLE
    c = crc ^ 0xFFFFFFFF
    for b in bytes(data):
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def mask_crc(c):
    """LevelDB/TF masking: rotate right by 15 and add a constant (mod 2^32)."""
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# --- minimal protobuf and LevelDB-table reading --------------------------------------------

class BundleError(Exception):
    pass


def _varint(b, i):
    v = s = 0
    while True:
        if i >= len(b) or s > 63:
            raise BundleError("truncated or overlong varint")
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return v, i


def _proto(b):
    """{field number: [values]} of one protobuf message (ints, or bytes for wire type 2)."""
    out, i = {}, 0
    while i < len(b):
        key, i = _varint(b, i)
        f, t = key >> 3, key & 7
        if t == 0:
            v, i = _varint(b, i)
        elif t == 1:
            v, i = struct.unpack_from("<Q", b, i)[0], i + 8
        elif t == 2:
            n, i = _varint(b, i)
            v, i = bytes(b[i:i + n]), i + n
        elif t == 5:
            v, i = struct.unpack_from("<I", b, i)[0], i + 4
        else:
            raise BundleError("unsupported protobuf wire type %d" % t)
        if i > len(b):
            raise BundleError("truncated protobuf field %d" % f)
        out.setdefault(f, []).append(v)
    return out


def _block(f, off, size, what):
    """One table block: its contents, after checking its trailer (type byte, masked CRC32C
    of contents + type)."""
    if off + size + 5 > len(f):
        raise BundleError("%s block [%d, +%d] past the end of the index" % (what, off, size))
    data, ctype = f[off:off + size], f[off + size]
    stored = struct.unpack_from("<I", f, off + size + 1)[0]
    if mask_crc(crc32c(f[off:off + size + 1])) != stored:
        raise BundleError("%s block at %d: CRC32C mismatch" % (what, off))
    if ctype != 0:
        raise BundleError("%s block at %d: compressed (type %d), not supported" % (what, off, ctype))
    return data


def _entries(block):
    """(key, value) pairs of a LevelDB block (prefix-compressed keys, restart array at the end)."""
    if len(block) < 4:
        raise BundleError("block too short")
    nrest = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * nrest
    if end < 0:
        raise BundleError("bad restart count %d" % nrest)
    i, key = 0, b""
    while i < end:
        shared, i = _varint(block, i)
        nonshared, i = _varint(block, i)
        vlen, i = _varint(block, i)
        if shared > len(key) or i + nonshared + vlen > end:
            raise BundleError("corrupt block entry")
        key = key[:shared] + bytes(block[i:i + nonshared])
        i += nonshared
        yield key, bytes(block[i:i + vlen])
        i += vlen


def read_table(path):
    """All (key, value) records of a LevelDB-format table file, in order."""
    with open(path, "rb") as fh:
        f = fh.read()
    if len(f) < 48 or struct.unpack_from("<Q", f, len(f) - 8)[0] != 0xDB4775248B80FB57:
        raise BundleError("%s: not a LevelDB table (bad footer magic)" % path)
    foot = f[-48:]
    _, i = _varint(foot, 0)  # metaindex handle (TF writes an empty one; not needed)
    _, i = _varint(foot, i)
    ix_off, i = _varint(foot, i)
    ix_size, i = _varint(foot, i)
    out = []
    for _, handle in _entries(_block(f, ix_off, ix_size, "index")):
        off, j = _varint(handle, 0)
        size, _ = _varint(handle, j)
        out.extend(_entries(_block(f, off, size, "data")))
    return out


def _prefix(ckpt_dir):
    """The checkpoint prefix: from the 'checkpoint' file, else the folder's only *.index."""
    cp = os.path.join(ckpt_dir, "checkpoint")
    if os.path.isfile(cp):
        for line in open(cp):
            if line.startswith("model_checkpoint_path:"):
                name = line.split(":", 1)[1].strip().strip('"')
                return name if os.path.isabs(name) else os.path.join(ckpt_dir, name)
    idx = [n for n in os.listdir(ckpt_dir) if n.endswith(".index")]
    if len(idx) != 1:
        raise BundleError("%s: no 'checkpoint' file and %d .index files" % (ckpt_dir, len(idx)))
    return os.path.join(ckpt_dir, idx[0][:-len(".index")])


def read_checkpoint(ckpt_dir, verbose=False):
    """{name: float32 array in TF layout} of every float VARIABLE_VALUE tensor of a TF2
    tensor bundle; names lose the '/.ATTRIBUTES/VARIABLE_VALUE' suffix. Checks the header
    (one shard, little-endian), each entry's size against its shape, and each tensor's
    masked CRC32C."""
    prefix = _prefix(ckpt_dir)
    records = read_table(prefix + ".index")
    if not records or records[0][0] != b"":
        raise BundleError("no BundleHeaderProto (empty key) first")
    hdr = _proto(records[0][1])
    nshards = hdr.get(1, [0])[0]
    if hdr.get(2, [0])[0] != 0:
        raise BundleError("big-endian bundle not supported")
    datas = {}
    out = {}
    for key, val in records[1:]:
        name = key.decode()
        e = _proto(val)
        dtype = e.get(1, [0])[0]
        if not name.endswith(SUFFIX) or dtype != 1:  # DT_FLOAT only; object graph etc. skipped
            if verbose:
                print("skipped %s (dtype %d)" % (name, dtype))
            continue
        if 7 in e:
            raise BundleError("%s: sliced tensors not supported" % name)
        shape = []
        for dim in _proto(e[2][0]).get(2, []) if 2 in e else []:
            shape.append(_proto(dim).get(1, [0])[0])
        shard, off, size = e.get(3, [0])[0], e.get(4, [0])[0], e.get(5, [0])[0]
        if shard >= nshards:
            raise BundleError("%s: shard %d of %d" % (name, shard, nshards))
        if shard not in datas:
            with open("%s.data-%05d-of-%05d" % (prefix, shard, nshards), "rb") as fh:
                datas[shard] = fh.read()
        d = datas[shard]
        if size != 4 * int(np.prod(shape, dtype=np.int64)) or off + size > len(d):
            raise BundleError("%s: size %d at %d does not fit shape %s / data file" % (name, size, off, shape))
        raw = d[off:off + size]
        if 6 not in e or mask_crc(crc32c(raw)) != e[6][0]:
            raise BundleError("%s: tensor CRC32C mismatch" % name)
        out[name[:-len(SUFFIX)]] = np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)
    return out


def read_safetensors(path):
    """({name: float32 array}, metadata) of a safetensors file (F32 tensors only)."""
    with open(path, "rb") as fh:
        b = fh.read()
    n = struct.unpack_from("<Q", b, 0)[0]
    head = json.loads(b[8:8 + n].decode("utf-8"))
    meta = head.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, t in head.items():
        if t["dtype"] != "F32":
            raise BundleError("%s: dtype %s" % (name, t["dtype"]))
        s, e = t["data_offsets"]
        out[name] = np.frombuffer(b[base + s:base + e], dtype="<f4").reshape(t["shape"]).astype(np.float32)
    return out, meta


def expected_shapes():
    """{name: TF shape} of every tensor the light generator has (126, 878,433 values)."""
    s = {}

    def norm(p):
        s[p + "/gamma"] = (1,)
        s[p + "/beta"] = (1,)

    def basic(p, c):  # BasicShuffleUnitV2 branch of width c
        s[p + "/layer-0/kernel"] = (1, 1, c, c)
        norm(p + "/layer-1")
        s[p + "/layer-3/depthwise_kernel"] = (3, 3, c, 1)
        norm(p + "/layer-4")
        s[p + "/layer-5/kernel"] = (1, 1, c, c)
        norm(p + "/layer-6")

    w = WIDTH
    s["flat_conv1/model/layer-1/kernel"] = (5, 5, 3, w)
    s["flat_conv1/model/layer-1/bias"] = (w,)
    norm("flat_conv1/model/layer-2")
    for name, c in (("down_conv1", w), ("down_conv2", 2 * w)):
        s[name + "/l_model/layer-0/depthwise_kernel"] = (3, 3, c, 1)
        norm(name + "/l_model/layer-1")
        s[name + "/l_model/layer-2/kernel"] = (1, 1, c, c)
        s[name + "/r_model/layer-0/kernel"] = (1, 1, c, c)
        norm(name + "/r_model/layer-1")
        s[name + "/r_model/layer-3/depthwise_kernel"] = (3, 3, c, 1)
        norm(name + "/r_model/layer-4")
        s[name + "/r_model/layer-5/kernel"] = (1, 1, c, c)
        norm(name + "/bn_act/layer-0")
    for i in range(N_RES):
        basic("residual_blocks/layer-%d/model" % i, 2 * w)
    for name, cin, cout in (("up_conv1", 4 * w, 2 * w), ("up_conv2", 2 * w, w)):
        s[name + "/model/layer-0/kernel"] = (1, 1, cin, cout)
        s[name + "/model/layer-0/bias"] = (cout,)
        basic(name + "/model/layer-1/model", cout // 2)
    s["final_conv/layer-1/kernel"] = (5, 5, w, 3)
    s["final_conv/layer-1/bias"] = (3,)
    return s


def check_tensors(t, what):
    exp = expected_shapes()
    assert len(exp) == N_TENSORS and sum(int(np.prod(v)) for v in exp.values()) == N_PARAMS
    if set(t) != set(exp):
        raise BundleError("%s: missing %s, unexpected %s" % (what, sorted(set(exp) - set(t))[:5],
                                                            sorted(set(t) - set(exp))[:5]))
    for k, v in exp.items():
        if tuple(t[k].shape) != v:
            raise BundleError("%s: %s has shape %s, expected %s" % (what, k, t[k].shape, v))


# --- the ops -------------------------------------------------------------------------------

def global_in(x, gamma, beta, eps=EPS):
    """keras-contrib InstanceNormalization(axis=None): statistics over C, H, W per image,
    biased variance, eps added to the standard deviation, scalar gamma/beta."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) / (torch.sqrt(var) + eps) * gamma + beta


def channel_shuffle(x):
    """out[2j + g] = in[g*C/2 + j]."""
    n, c, h, w = x.shape
    return x.reshape(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


def same_pads(n, stride, k=3):
    """TF 'SAME' padding of one side: (before, after)."""
    out = -(-n // stride)
    total = max((out - 1) * stride + k - n, 0)
    return total // 2, total - total // 2


def depthwise_same(x, w, stride):
    """Depthwise 3x3, TF SAME padding (zeros), no bias; w: [C][1][3][3]."""
    top, bottom = same_pads(x.shape[2], stride)
    left, right = same_pads(x.shape[3], stride)
    x = F.pad(x, (left, right, top, bottom))
    return F.conv2d(x, w, stride=stride, groups=x.shape[1])


def upsample2_legacy(x):
    """TF1 resize_bilinear to 2x (align_corners=False, half_pixel_centers=False): even
    outputs copy, odd ones are a + (b - a) * 0.5 with the next sample clamped at the edge;
    horizontal pass first, then vertical."""
    def axis(x, d):
        nxt = torch.cat([x.narrow(d, 1, x.shape[d] - 1), x.narrow(d, x.shape[d] - 1, 1)], d)
        mid = x + (nxt - x) * 0.5
        s = list(x.shape)
        s[d] *= 2
        return torch.stack([x, mid], d + 1).reshape(s)
    return axis(axis(x, 3), 2)


# --- the network ---------------------------------------------------------------------------

def _torch_param(name, a):
    """TF layout -> the layout this module uses: conv HWIO -> OIHW, depthwise [3][3][C][1]
    -> [C][1][3][3], others unchanged."""
    if name.endswith("depthwise_kernel"):
        a = a.transpose(2, 3, 0, 1)
    elif name.endswith("kernel"):
        a = a.transpose(3, 2, 0, 1)
    return np.ascontiguousarray(a)


class LightGenerator(nn.Module):
    """The light generator; forward(x): [N][3][H][W] RGB in [-1,1] -> tanh output
    [N][3][4*ceil(H/4)][4*ceil(W/4)] (not cropped)."""

    def __init__(self, tensors, dtype=torch.float32, ops=None):
        super().__init__()
        check_tensors(tensors, "weights")
        self.names = sorted(tensors)
        self.p = nn.ParameterList([nn.Parameter(torch.from_numpy(_torch_param(n, tensors[n])).to(dtype),
                                                requires_grad=False) for n in self.names])
        self.index = {n: i for i, n in enumerate(self.names)}
        # The ops can be swapped (export_onnx_light.py swaps in ones with ONNX symbolics).
        self.ops = ops or {"in": global_in, "dw": depthwise_same, "up": upsample2_legacy,
                           "shuffle": channel_shuffle}

    def w(self, name):
        return self.p[self.index[name]]

    def norm(self, x, p):
        return self.ops["in"](x, self.w(p + "/gamma"), self.w(p + "/beta"))

    def conv1x1(self, x, p, bias=False):
        return F.conv2d(x, self.w(p + "/kernel"), self.w(p + "/bias") if bias else None)

    def basic(self, x, p):
        c = self.w(p + "/layer-0/kernel").shape[1]  # half the channels (a constant when traced)
        xl, xr = x[:, :c], x[:, c:]
        f = F.relu(self.norm(self.conv1x1(xr, p + "/layer-0"), p + "/layer-1"))
        f = self.norm(self.ops["dw"](f, self.w(p + "/layer-3/depthwise_kernel"), 1), p + "/layer-4")
        f = F.relu(self.norm(self.conv1x1(f, p + "/layer-5"), p + "/layer-6"))
        return self.ops["shuffle"](torch.cat([xl, f], 1))

    def down(self, x, p):
        left = self.norm(self.ops["dw"](x, self.w(p + "/l_model/layer-0/depthwise_kernel"), 2),
                         p + "/l_model/layer-1")
        left = self.conv1x1(left, p + "/l_model/layer-2")
        right = F.relu(self.norm(self.conv1x1(x, p + "/r_model/layer-0"), p + "/r_model/layer-1"))
        right = self.norm(self.ops["dw"](right, self.w(p + "/r_model/layer-3/depthwise_kernel"), 2),
                          p + "/r_model/layer-4")
        right = self.conv1x1(right, p + "/r_model/layer-5")
        x = F.relu(self.norm(torch.cat([left, right], 1), p + "/bn_act/layer-0"))
        return self.ops["shuffle"](x)

    def forward(self, x):
        # conv2d's own zero padding is the ZeroPadding2D(2) + VALID conv of the seed.
        x = F.conv2d(x, self.w("flat_conv1/model/layer-1/kernel"),
                     self.w("flat_conv1/model/layer-1/bias"), padding=2)
        x = F.relu(self.norm(x, "flat_conv1/model/layer-2"))
        x = self.down(x, "down_conv1")
        x = self.down(x, "down_conv2")
        for i in range(N_RES):
            x = self.basic(x, "residual_blocks/layer-%d/model" % i)
        for p in ("up_conv1/model", "up_conv2/model"):
            x = self.conv1x1(self.ops["up"](x), p + "/layer-0", bias=True)
            x = self.basic(x, p + "/layer-1/model")
        x = F.conv2d(x, self.w("final_conv/layer-1/kernel"), self.w("final_conv/layer-1/bias"),
                     padding=2)
        return torch.tanh(x)


def load(ckpt_dir, dtype=torch.float32, threads=None):
    if threads:
        torch.set_num_threads(threads)
    return LightGenerator(read_checkpoint(ckpt_dir), dtype).eval()


def preprocess(rgb):
    """[H][W][3] uint8 RGB -> [1][3][H][W] float32 in [-1,1], as x / 127.5 - 1 in float32."""
    x = np.asarray(rgb, dtype=np.float32) / np.float32(127.5) - np.float32(1)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def forward_raw(model, rgb):
    """tanh output [3][H][W] float32 for [H][W][3] uint8 RGB, cropped to the input's size."""
    h, w = rgb.shape[:2]
    dtype = model.p[0].dtype
    with torch.no_grad():
        y = model(preprocess(rgb).to(dtype))[0, :, :h, :w]
    return y.float().numpy()


def to_uint8(y):
    """[3][H][W] tanh output -> [H][W][3] uint8: ((y + 1) * 127.5) in float32, truncated."""
    v = (np.asarray(y, dtype=np.float32) + np.float32(1)) * np.float32(127.5)
    return np.clip(v, 0, 255).astype(np.uint8).transpose(1, 2, 0).copy()


def stylize(model, rgb):
    return to_uint8(forward_raw(model, rgb))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, help="TF2 checkpoint folder (light_<style>_ckpt/)")
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True, help="uint8 RGB output (PNG recommended)")
    ap.add_argument("--float-out", help="write the tanh output [3][H][W] float32 .npy here")
    ap.add_argument("--safetensors", help="also check this exported .safetensors against the checkpoint")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--double", action="store_true", help="run in float64")
    a = ap.parse_args()
    from PIL import Image
    tensors = read_checkpoint(a.ckpt)
    check_tensors(tensors, a.ckpt)
    if a.safetensors:
        st, meta = read_safetensors(a.safetensors)
        check_tensors(st, a.safetensors)
        bad = [k for k in tensors if tensors[k].tobytes() != st[k].tobytes()]
        if bad or meta.get("architecture") != "cartoongan-light":
            sys.exit("safetensors differs: %d tensors (%s), metadata %s" % (len(bad), bad[:3], meta))
        print("%s: %d tensors bit-identical to the checkpoint, metadata %s" % (a.safetensors, len(st), meta))
    if a.threads:
        torch.set_num_threads(a.threads)
    model = LightGenerator(tensors, torch.float64 if a.double else torch.float32).eval()
    rgb = np.asarray(Image.open(a.input).convert("RGB"))
    y = forward_raw(model, rgb)
    if a.float_out:
        np.save(a.float_out, y.astype(np.float32))
    Image.fromarray(to_uint8(y)).save(a.output)


if __name__ == "__main__":
    main()
