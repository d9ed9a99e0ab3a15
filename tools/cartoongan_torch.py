"""PyTorch reference of the ORIGINAL CartoonGAN generator (Chen et al., CVPR 2018).

This is the definition the C engine is tested against. It loads the upstream release's
.npy weights (one file per tensor, PyTorch layouts) from a style directory such as
../shared/weights/cartoongan/hayao/, and runs in float32.

    model = load_generator(style_dir, threads=2)
    y = forward_raw(model, x)        # x: BGR [-1,1] float32 [3,h,w] (or [1,3,h,w])
    out = stylize(model, rgb_uint8)  # [h,w,3] uint8 RGB -> same size uint8 RGB

Padding rule of stylize() (the C side, cg_stylize, must match): each side that is not a
multiple of 4 is padded at the bottom / right to the next multiple of 4 with numpy's
'reflect' mode (mirror without repeating the edge pixel, like torch.nn.ReflectionPad2d).
When the pad exceeds side - 1 (e.g. a 1- or 2-pixel side needing 3 more), the reflection
is repeated: np.pad(mode='reflect') extends the already padded array again, i.e. the
index sequence is periodic with period 2*(side-1) (0,1,0,1,... for side 2; a side of 1
just repeats its pixel). The output is cropped back to the input size.
"""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# The PyTorch port's eps (network/Transformer.py of the authors' test repository). NOTE:
# the authors' own outputs (data/reference/original_model_outputs, made by their Torch7
# test.lua) match eps = 1e-5 far better: see tools/check_reference.py.
EPS = 1e-9
STYLES = ("shinkai", "hayao", "hosoda", "paprika")


def instance_norm(x, scale, shift, eps=EPS):
    """[n,c,h,w]: y = (x - mean) / sqrt(biased var + eps) * scale + shift, per channel."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps)
    return y * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)


class InstanceNorm(nn.Module):
    def __init__(self, c, eps=EPS):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(c))
        self.shift = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return instance_norm(x, self.scale, self.shift, self.eps)


class Generator(nn.Module):
    def __init__(self, eps=EPS):
        super().__init__()
        c = nn.Conv2d
        norm = lambda n: InstanceNorm(n, eps)
        self.conv01_1 = c(3, 64, 7)
        self.in01_1 = norm(64)
        self.conv02_1 = c(64, 128, 3, 2, 1)
        self.conv02_2 = c(128, 128, 3, 1, 1)
        self.in02_1 = norm(128)
        self.conv03_1 = c(128, 256, 3, 2, 1)
        self.conv03_2 = c(256, 256, 3, 1, 1)
        self.in03_1 = norm(256)
        for i in range(4, 12):  # residual blocks 04..11 (reflect pad 1 inside)
            setattr(self, "conv%02d_1" % i, c(256, 256, 3))
            setattr(self, "in%02d_1" % i, norm(256))
            setattr(self, "conv%02d_2" % i, c(256, 256, 3))
            setattr(self, "in%02d_2" % i, norm(256))
        self.deconv01_1 = nn.ConvTranspose2d(256, 128, 3, 2, 1, 1)
        self.deconv01_2 = c(128, 128, 3, 1, 1)
        self.in12_1 = norm(128)
        self.deconv02_1 = nn.ConvTranspose2d(128, 64, 3, 2, 1, 1)
        self.deconv02_2 = c(64, 64, 3, 1, 1)
        self.in13_1 = norm(64)
        self.deconv03_1 = c(64, 3, 7)

    def forward(self, x):
        """x: BGR in [-1,1], [n,3,h,w] -> tanh output, BGR, [n,3,h',w']."""
        rp = lambda t, p: F.pad(t, (p, p, p, p), mode="reflect")
        x = F.relu(self.in01_1(self.conv01_1(rp(x, 3))))
        x = F.relu(self.in02_1(self.conv02_2(self.conv02_1(x))))
        x = F.relu(self.in03_1(self.conv03_2(self.conv03_1(x))))
        for i in range(4, 12):
            c1, n1, c2, n2 = (getattr(self, f % i) for f in
                              ("conv%02d_1", "in%02d_1", "conv%02d_2", "in%02d_2"))
            x = x + n2(c2(rp(F.relu(n1(c1(rp(x, 1)))), 1)))
        x = F.relu(self.in12_1(self.deconv01_2(self.deconv01_1(x))))
        x = F.relu(self.in13_1(self.deconv02_2(self.deconv02_1(x))))
        return torch.tanh(self.deconv03_1(rp(x, 3)))


def load_generator(style_dir, threads=None, eps=EPS):
    """Builds the generator and loads every tensor from style_dir/<name>.npy (strict)."""
    if threads:
        torch.set_num_threads(threads)
    model = Generator(eps)
    state = {}
    for name, p in model.state_dict().items():
        a = np.load(os.path.join(style_dir, name + ".npy"))
        if a.dtype != np.float32 or tuple(a.shape) != tuple(p.shape):
            raise ValueError("%s: %s %s, expected float32 %s"
                             % (name, a.dtype, a.shape, tuple(p.shape)))
        state[name] = torch.from_numpy(a)
    model.load_state_dict(state, strict=True)
    return model.float().eval()


@torch.no_grad()
def forward_raw(model, x):
    """Runs the network on BGR [-1,1] float32 [3,h,w] or [1,3,h,w] of any size (no
    padding to 4); returns the tanh output in the same rank, as a float32 numpy array."""
    t = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    y = model(t[None] if t.dim() == 3 else t)
    return (y[0] if t.dim() == 3 else y).numpy()


def to_uint8(y_bgr):
    """Tanh output [3,h,w] BGR -> uint8 [h,w,3] RGB: round(255*(y*0.5+0.5)) clamped."""
    v = np.rint(255.0 * (y_bgr.astype(np.float32) * 0.5 + 0.5))
    return np.clip(v, 0, 255).astype(np.uint8)[::-1].transpose(1, 2, 0).copy()


def pad_to_4(rgb):
    """Reflect-pads [h,w,3] at the bottom/right to sides that are multiples of 4."""
    h, w = rgb.shape[:2]
    return np.pad(rgb, ((0, -h % 4), (0, -w % 4), (0, 0)), mode="reflect")


def stylize(model, rgb):
    """[h,w,3] uint8 RGB -> [h,w,3] uint8 RGB: pad to 4 (see module doc), run, crop."""
    h, w = rgb.shape[:2]
    x = pad_to_4(rgb).astype(np.float32)[:, :, ::-1].transpose(2, 0, 1)  # BGR CHW
    y = forward_raw(model, x / 255.0 * 2.0 - 1.0)
    return to_uint8(y)[:h, :w]
