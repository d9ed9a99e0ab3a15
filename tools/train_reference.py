#!/usr/bin/python3
"""PyTorch reference of one CartoonGAN training step, as doc/training-engine.md specifies.

The C training engine (src/train/, build/tools/train_step) is tested against this file:
same networks (G = tools/cartoongan_torch.py's Generator, D = the paper's discriminator,
VGG19 features[0..25] frozen), same losses, same step order, torch.optim.Adam with
betas (0.5, 0.999) and eps 1e-8, all float32. The CLI mirrors train_step:

    /usr/bin/python3 tools/train_reference.py --phase init|gan --g G.safetensors|STYLE_DIR
        [--d D.safetensors] --vgg V.safetensors|V.h5 --photo P.npy
        [--cartoon C.npy --smooth S.npy] [--steps N] [--lr-g X] [--lr-d X]
        [--content-weight W] [--style-weight W] [--gan-loss lsgan|bce]
        [--d-norm batch|instance] [--seed N] [--threads N] --out DIR

and writes DIR/losses.json (the first step's losses that apply), grad_g.safetensors and,
in the GAN phase, grad_d.safetensors (the first step's gradients: G's from the G loss,
D's from the D loss), g.safetensors and, in the GAN phase, d.safetensors (the parameters
after N steps). Images are float32 [N][3][H][W] .npy in G's convention (BGR, [-1, 1]).

Also a library (tools/make_train_fixtures.py, bench/train_step_torch.py): safetensors
read/write in plain numpy, load_g / load_d / fresh_d / load_vgg, and Trainer, whose
step() is one training step.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cartoongan_torch as cg  # noqa: E402

BETAS = (0.5, 0.999)
ADAM_EPS = 1e-8
NORM_EPS = 1e-5  # D's batch / instance norm (G keeps cartoongan_torch's 1e-9)

# D's tensors in the doc's order (fixture summaries and safetensors files use it).
D_CONVS = (("conv01", 3, 32, 1), ("conv02_1", 32, 64, 2), ("conv02_2", 64, 128, 1),
           ("conv03_1", 128, 128, 2), ("conv03_2", 128, 256, 1), ("conv04", 256, 256, 1),
           ("conv05", 256, 1, 1))
D_ORDER = ("conv01.weight", "conv01.bias", "conv02_1.weight", "conv02_1.bias",
           "conv02_2.weight", "conv02_2.bias", "norm02.weight", "norm02.bias",
           "conv03_1.weight", "conv03_1.bias", "conv03_2.weight", "conv03_2.bias",
           "norm03.weight", "norm03.bias", "conv04.weight", "conv04.bias",
           "norm04.weight", "norm04.bias", "conv05.weight", "conv05.bias")

# VGG19's 12 convolutions up to conv4_4: torchvision features index, Keras layer name,
# in and out channels; a 2x2 max pool follows the convolutions marked True.
VGG_LAYERS = ((0, "block1_conv1", 3, 64, False), (2, "block1_conv2", 64, 64, True),
              (5, "block2_conv1", 64, 128, False), (7, "block2_conv2", 128, 128, True),
              (10, "block3_conv1", 128, 256, False), (12, "block3_conv2", 256, 256, False),
              (14, "block3_conv3", 256, 256, False), (16, "block3_conv4", 256, 256, True),
              (19, "block4_conv1", 256, 512, False), (21, "block4_conv2", 512, 512, False),
              (23, "block4_conv3", 512, 512, False), (25, "block4_conv4", 512, 512, False))
TV_MEAN, TV_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # R, G, B
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


# ---------------------------------------------------------------- safetensors (numpy)

_ST_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64,
              "I32": np.int32}


def read_safetensors(path):
    """{name: numpy array} from a .safetensors file (8-byte little-endian header length,
    JSON header, raw little-endian data); float types other than F32 are converted to
    float32 because every network here is float32."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _ST_DTYPES:
            raise ValueError("%s: %s: unsupported dtype %s" % (path, name, info["dtype"]))
        s, e = info["data_offsets"]
        a = np.frombuffer(raw[base + s:base + e],
                          dtype=np.dtype(_ST_DTYPES[info["dtype"]]).newbyteorder("<"))
        a = a.reshape(info["shape"])
        if a.dtype.kind == "f":
            a = a.astype(np.float32)
        out[name] = a.copy()
    return out


def write_safetensors(path, tensors):
    """Writes {name: array} as float32 safetensors, tensors in the dict's order (the
    header is padded with spaces to a multiple of 8 bytes, as the reference writer does,
    so the data stays aligned)."""
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(np.asarray(a, dtype="<f4")).tobytes()
        header[name] = {"dtype": "F32", "shape": list(np.shape(a)),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def state_numpy(module, order=None):
    """{name: float32 numpy copy} of a module's parameters, in `order` if given."""
    sd = {k: v.detach().cpu().numpy().astype(np.float32).copy()
          for k, v in module.state_dict().items()}
    return {k: sd[k] for k in (order or sd.keys())}


def load_state(module, tensors, what):
    """Strict load of {name: array} into module, checking every shape."""
    sd = module.state_dict()
    missing = sorted(set(sd) - set(tensors))
    extra = sorted(set(tensors) - set(sd))
    if missing or extra:
        raise ValueError("%s: missing %s, unexpected %s" % (what, missing[:5], extra[:5]))
    for k, p in sd.items():
        if tuple(tensors[k].shape) != tuple(p.shape):
            raise ValueError("%s: %s has shape %s, expected %s"
                             % (what, k, tuple(tensors[k].shape), tuple(p.shape)))
    module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(tensors[k],
                                                                     dtype=np.float32))
                            for k in sd}, strict=True)
    return module


# ---------------------------------------------------------------- networks

def g_names():
    """G's 94 tensor names in gen_tensors' order (src/model/generator.c): sorted."""
    return sorted(cg.Generator().state_dict().keys())


def load_g(path):
    """G from a .safetensors file or a style directory of .npy files (the release)."""
    if os.path.isdir(path):
        return cg.load_generator(path).train()
    return load_state(cg.Generator(), read_safetensors(path), path).train()


class Norm(nn.Module):
    """D's affine norm: training-mode batch norm (statistics over N x H x W) or instance
    norm (per sample over H x W); biased variance, eps 1e-5, no running statistics (a
    training step never uses them)."""

    def __init__(self, c, mode):
        super().__init__()
        if mode not in ("batch", "instance"):
            raise ValueError("d-norm must be batch or instance, not %r" % mode)
        self.mode = mode
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        if self.mode == "batch":
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, NORM_EPS)
        return F.instance_norm(x, None, None, self.weight, self.bias, True, 0.0, NORM_EPS)


class Discriminator(nn.Module):
    """The paper's D; every 3x3 convolution zero-padded by 1; S x S in, S/4 x S/4 logits.
    Parameters are registered in D_ORDER so state_dict() lists them in the doc's order."""

    def __init__(self, norm="batch"):
        super().__init__()
        for name, cin, cout, stride in D_CONVS:
            setattr(self, name, nn.Conv2d(cin, cout, 3, stride, 1))
            if name in ("conv02_2", "conv03_2", "conv04"):
                setattr(self, "norm" + name[4:6], Norm(cout, norm))

    def forward(self, x):
        lr = lambda t: F.leaky_relu(t, 0.2)
        x = lr(self.conv01(x))
        x = lr(self.conv02_1(x))
        x = lr(self.norm02(self.conv02_2(x)))
        x = lr(self.conv03_1(x))
        x = lr(self.norm03(self.conv03_2(x)))
        x = lr(self.norm04(self.conv04(x)))
        return self.conv05(x)


def fresh_d(norm="batch", seed=0):
    """D as the doc's "Fresh D": conv weights N(0, 0.02), biases 0, norm 1 / 0, drawn
    from torch.manual_seed(seed) in D_ORDER (the C side has its own generator, so only
    the distribution is shared, not the values)."""
    torch.manual_seed(seed)
    d = Discriminator(norm)
    with torch.no_grad():
        for name, p in d.named_parameters():
            if name.startswith("conv") and name.endswith(".weight"):
                p.normal_(0.0, 0.02)
            elif name.startswith("norm") and name.endswith(".weight"):
                p.fill_(1.0)
            else:
                p.zero_()
    return d


def load_d(path, norm="batch"):
    return load_state(Discriminator(norm), read_safetensors(path), path)


class VGG(nn.Module):
    """VGG19 features[0..25]: up to conv4_4 before its ReLU; frozen (no parameter
    gradients, but gradients flow to the input). mode says how images are preprocessed:
    "torchvision" (weights from .safetensors) or "caffe" (weights from Keras .h5)."""

    def __init__(self, mode):
        super().__init__()
        self.mode = mode
        self.convs = nn.ModuleList(nn.Conv2d(cin, cout, 3, 1, 1)
                                   for _, _, cin, cout, _ in VGG_LAYERS)
        self.requires_grad_(False)

    def preprocess(self, x):
        """G's convention (BGR, [-1, 1]) -> the weights' own input convention."""
        if self.mode == "torchvision":
            v = (x.flip(1) + 1) / 2  # BGR -> RGB, [0, 1]
            mean = torch.tensor(TV_MEAN, dtype=x.dtype).view(1, 3, 1, 1)
            std = torch.tensor(TV_STD, dtype=x.dtype).view(1, 3, 1, 1)
            return (v - mean) / std
        v = (x + 1) / 2 * 255  # caffe: stays BGR, [0, 255], mean subtracted
        return v - torch.tensor(CAFFE_MEAN_BGR, dtype=x.dtype).view(1, 3, 1, 1)

    def features(self, v):
        """The network on an already preprocessed input."""
        n = len(self.convs)
        for i, (conv, (_, _, _, _, pool)) in enumerate(zip(self.convs, VGG_LAYERS)):
            v = conv(v)
            if i + 1 < n:
                v = F.relu(v)
            if pool:
                v = F.max_pool2d(v, 2)
        return v

    def forward(self, x):
        return self.features(self.preprocess(x))


def vgg_from_torchvision(tensors, mode="torchvision"):
    """VGG from {features.N.weight [out][in][3][3], features.N.bias}."""
    v = VGG(mode)
    with torch.no_grad():
        for conv, (idx, _, cin, cout, _) in zip(v.convs, VGG_LAYERS):
            w = tensors["features.%d.weight" % idx]
            b = tensors["features.%d.bias" % idx]
            if w.shape != (cout, cin, 3, 3) or b.shape != (cout,):
                raise ValueError("features.%d: shapes %s %s" % (idx, w.shape, b.shape))
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(w, np.float32)))
            conv.bias.copy_(torch.from_numpy(np.ascontiguousarray(b, np.float32)))
    return v


def read_keras_vgg(path):
    """{features.N.weight/bias} from a Keras VGG19 .h5: group per layer (block1_conv1,
    ...), its attribute weight_names naming the kernel [3][3][in][out] and bias datasets
    in the group; kernels are transposed to [out][in][3][3]."""
    import h5py
    out = {}
    with h5py.File(path, "r") as f:
        g_root = f["model_weights"] if "model_weights" in f else f
        for idx, name, cin, cout, _ in VGG_LAYERS:
            g = g_root[name]
            names = [n.decode() if isinstance(n, bytes) else str(n)
                     for n in g.attrs["weight_names"]]
            k = np.asarray(g[names[0]], dtype=np.float32)
            b = np.asarray(g[names[1]], dtype=np.float32)
            if k.shape != (3, 3, cin, cout):
                raise ValueError("%s: kernel shape %s" % (name, k.shape))
            out["features.%d.weight" % idx] = np.ascontiguousarray(k.transpose(3, 2, 0, 1))
            out["features.%d.bias" % idx] = b
    return out


def load_vgg(path):
    """VGG from .safetensors (torchvision preprocessing) or .h5 (caffe preprocessing)."""
    if path.endswith(".h5"):
        return vgg_from_torchvision(read_keras_vgg(path), "caffe")
    return vgg_from_torchvision(read_safetensors(path), "torchvision")


# ---------------------------------------------------------------- losses and the step

def gan_loss(logits, target, kind):
    t = torch.full_like(logits, float(target))
    if kind == "lsgan":
        return F.mse_loss(logits, t)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, t)
    raise ValueError("gan-loss must be lsgan or bce, not %r" % kind)


def gram(f):
    n, c, h, w = f.shape
    x = f.reshape(n, c, h * w)
    return torch.bmm(x, x.transpose(1, 2)) / (h * w * c)


def style_loss(f_cartoon, f_fake):
    """Mean over samples of mean |Gram(cartoon_i) - Gram(fake_i)|: with equal-sized
    samples that is the mean over every element."""
    return (gram(f_cartoon) - gram(f_fake)).abs().mean()


def adam(params, lr):
    return torch.optim.Adam(params, lr=lr, betas=BETAS, eps=ADAM_EPS, weight_decay=0)


class Trainer:
    """Holds G, D, VGG and both Adam states; step() is one training step of the phase.
    After the first step, .losses, .grad_g and .grad_d hold that step's values."""

    def __init__(self, g, d, vgg, phase, lr_g=2e-4, lr_d=2e-4, content_weight=10.0,
                 style_weight=0.0, loss="lsgan"):
        if phase not in ("init", "gan"):
            raise ValueError("phase must be init or gan, not %r" % phase)
        self.g, self.d, self.vgg, self.phase = g, d, vgg, phase
        self.w_c, self.w_s, self.loss = float(content_weight), float(style_weight), loss
        self.opt_g = adam(g.parameters(), lr_g)
        self.opt_d = adam(d.parameters(), lr_d) if phase == "gan" else None
        self.steps = 0
        self.losses = self.grad_g = self.grad_d = None

    def content(self, fake, photo):
        f_fake = self.vgg(fake)
        with torch.no_grad():
            f_photo = self.vgg(photo)
        return f_fake, F.l1_loss(f_fake, f_photo)

    def step(self, photo, cartoon=None, smooth=None):
        first = self.steps == 0
        self.opt_g.zero_grad(set_to_none=True)
        if self.phase == "init":
            fake = self.g(photo)
            _, content = self.content(fake, photo)
            total = self.w_c * content
            total.backward()
            losses = {"content_loss": content, "g_total_loss": total}
        else:
            # 1. fake = G(photo).  2. D loss on cartoon -> 1, smooth -> 0, fake -> 0, each
            # call with its own batch statistics; D's Adam update before G's loss.
            fake = self.g(photo)
            self.d.requires_grad_(True)
            self.opt_d.zero_grad(set_to_none=True)
            d_real = gan_loss(self.d(cartoon), 1, self.loss)
            d_smooth = gan_loss(self.d(smooth), 0, self.loss)
            d_fake = gan_loss(self.d(fake.detach()), 0, self.loss)
            d_total = d_real + d_smooth + d_fake
            d_total.backward()
            if first:
                self.grad_d = {k: p.grad.detach().clone() for k, p in self.d.named_parameters()}
            self.opt_d.step()
            # 3. G loss through the UPDATED D on the same fake. D's parameters are frozen
            # for this backward: it must neither move D nor leave gradients in it.
            self.d.requires_grad_(False)
            adv = gan_loss(self.d(fake), 1, self.loss)
            f_fake, content = self.content(fake, photo)
            total = adv + self.w_c * content
            losses = {"content_loss": content, "g_adversarial_loss": adv}
            if self.w_s != 0:
                with torch.no_grad():
                    f_cartoon = self.vgg(cartoon)
                style = style_loss(f_cartoon, f_fake)
                total = total + self.w_s * style
                losses["style_loss"] = style
            total.backward()
            self.d.requires_grad_(True)
            losses.update(g_total_loss=total, d_real_loss=d_real, d_smooth_loss=d_smooth,
                          d_fake_loss=d_fake, d_total_loss=d_total)
        if first:
            self.grad_g = {k: p.grad.detach().clone() for k, p in self.g.named_parameters()}
            self.losses = {k: float(v.detach()) for k, v in losses.items()}
        self.opt_g.step()
        self.steps += 1


def load_images(path, what):
    a = np.load(path)
    if a.dtype != np.float32 or a.ndim != 4 or a.shape[1] != 3:
        raise ValueError("%s (%s): expected float32 [N][3][H][W], got %s %s"
                         % (path, what, a.dtype, a.shape))
    return torch.from_numpy(np.ascontiguousarray(a))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phase", required=True, choices=("init", "gan"))
    ap.add_argument("--g", required=True, help="G.safetensors or a style directory of .npy")
    ap.add_argument("--d", help="D.safetensors (default: a fresh D from --seed)")
    ap.add_argument("--vgg", required=True, help="VGG19 .safetensors or Keras .h5")
    ap.add_argument("--photo", required=True)
    ap.add_argument("--cartoon")
    ap.add_argument("--smooth")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--lr-g", type=float, default=2e-4)
    ap.add_argument("--lr-d", type=float, default=2e-4)
    ap.add_argument("--content-weight", type=float, default=10.0)
    ap.add_argument("--style-weight", type=float, default=0.0)
    ap.add_argument("--gan-loss", default="lsgan", choices=("lsgan", "bce"))
    ap.add_argument("--d-norm", default="batch", choices=("batch", "instance"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.phase == "gan" and not (a.cartoon and a.smooth):
        ap.error("--phase gan needs --cartoon and --smooth")
    if a.steps < 1:
        ap.error("--steps must be at least 1")
    return a


def main(argv=None):
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    g = load_g(a.g)
    d = load_d(a.d, a.d_norm) if a.d else fresh_d(a.d_norm, a.seed)
    vgg = load_vgg(a.vgg)
    photo = load_images(a.photo, "photo")
    cartoon = load_images(a.cartoon, "cartoon") if a.phase == "gan" else None
    smooth = load_images(a.smooth, "smooth") if a.phase == "gan" else None
    tr = Trainer(g, d, vgg, a.phase, a.lr_g, a.lr_d, a.content_weight, a.style_weight,
                 a.gan_loss)
    for _ in range(a.steps):
        tr.step(photo, cartoon, smooth)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "losses.json"), "w") as f:
        json.dump(tr.losses, f, indent=1, sort_keys=True)
        f.write("\n")
    write_safetensors(os.path.join(a.out, "grad_g.safetensors"),
                      {k: tr.grad_g[k].numpy() for k in g_names()})
    write_safetensors(os.path.join(a.out, "g.safetensors"), state_numpy(g, g_names()))
    if a.phase == "gan":
        write_safetensors(os.path.join(a.out, "grad_d.safetensors"),
                          {k: tr.grad_d[k].numpy() for k in D_ORDER})
        write_safetensors(os.path.join(a.out, "d.safetensors"), state_numpy(d, D_ORDER))
    return tr


if __name__ == "__main__":
    main()
