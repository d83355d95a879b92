"""Image degradations that define the world's second reward ("aesthetic": clean renders are good).

Every function takes images ``x`` [B,3,H,W] float in [0,1], a severity in (0,1] (a float or one value
per image) and a `torch.Generator`, and returns degraded images in [0,1]. All randomness is drawn
from the generator on the CPU and moved to ``x.device``, so results are reproducible given the seed
on any device. Strengths are stated for 32x32 images and scale with the image size; at severity 0.2
each degradation is already visible by eye, at 1 it is gross.

The list mirrors the failure modes of score-distillation samples: blur and speckle/noise (from
averaging or under-denoising), over-saturation (from high guidance scales; Poole et al. 2022 note
it for SDS), colour casts, blockiness, and off-centre composition.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

KINDS: tuple[str, ...] = ("blur", "noise", "oversaturate", "colour_cast", "pixelate", "shift", "speckle")


def _severity(severity, x: torch.Tensor) -> torch.Tensor:
    s = torch.as_tensor(severity, dtype=torch.float32).flatten().to(x.device)
    s = s.expand(x.shape[0]) if s.numel() == 1 else s
    if s.shape[0] != x.shape[0] or bool(((s <= 0) | (s > 1)).any()):
        raise ValueError("severity must be in (0, 1], one value or one per image")
    return s


def _rand(g: torch.Generator, *shape, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(*shape, generator=g).to(like.device, like.dtype)


def blur(x, severity, g: torch.Generator | None = None):
    """Gaussian blur, sigma = (0.6 + 1.9 s) px at 32 px; separable, edges replicated."""
    s = _severity(severity, x)
    b, c, h, w = x.shape
    sigma = (0.6 + 1.9 * s) * h / 32
    r = int(math.ceil(3 * float(sigma.max())))
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t[None] / sigma[:, None].to(x.dtype)) ** 2)
    # each image keeps its own 3-sigma support, so its result does not depend on the batch it is in
    k = k * (t.abs()[None] <= torch.ceil(3 * sigma)[:, None].to(x.dtype))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # one kernel per (image, channel)
    y = F.pad(x.reshape(1, b * c, h, w), (r, r, r, r), mode="replicate")
    y = F.conv2d(y, k[:, None, None, :], groups=b * c)
    y = F.conv2d(y, k[:, None, :, None], groups=b * c)
    return y.reshape(b, c, h, w).clamp(0, 1)


def noise(x, severity, g: torch.Generator):
    """Additive Gaussian noise, std = 0.04 + 0.21 s."""
    s = _severity(severity, x)
    eps = torch.randn(x.shape, generator=g).to(x.device, x.dtype)
    return (x + (0.04 + 0.21 * s).view(-1, 1, 1, 1) * eps).clamp(0, 1)


def oversaturate(x, severity, g: torch.Generator | None = None):
    """Saturation and contrast blow-out: chroma around the luma (Rec. 601 weights) and then values
    around mid-grey are both scaled by 1 + 3 s, as an over-guided sample looks."""
    s = _severity(severity, x).view(-1, 1, 1, 1)
    gain = 1 + 3 * s
    luma = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)).sum(
        1, keepdim=True)
    y = luma + gain * (x - luma)
    return (0.5 + gain * (y - 0.5)).clamp(0, 1)


def colour_cast(x, severity, g: torch.Generator):
    """Blend the whole image towards one random saturated colour, weight 0.1 + 0.4 s."""
    s = _severity(severity, x).view(-1, 1, 1, 1)
    col = _rand(g, x.shape[0], 3, like=x)
    lo, hi = col.min(1, keepdim=True).values, col.max(1, keepdim=True).values
    col = ((col - lo) / (hi - lo).clamp_min(1e-6)).view(-1, 3, 1, 1)  # stretch to full saturation
    a = 0.1 + 0.4 * s
    return ((1 - a) * x + a * col).clamp(0, 1)


def pixelate(x, severity, g: torch.Generator | None = None):
    """Down-sample by area averaging by a factor 1.5 + 4.5 s, then up-sample with nearest."""
    s = _severity(severity, x)
    h, w = x.shape[-2:]
    out = []
    for i in range(x.shape[0]):  # sizes differ per image
        f = 1.5 + 4.5 * float(s[i])
        small = F.interpolate(x[i:i + 1], size=(max(2, round(h / f)), max(2, round(w / f))), mode="area")
        out.append(F.interpolate(small, size=(h, w), mode="nearest"))
    return torch.cat(out).clamp(0, 1)


def shift(x, severity, g: torch.Generator):
    """Translate the content off-centre by (0.2 + 0.3 s) of the image size in a random direction;
    the uncovered border repeats the edge pixels (streaks where an object touches the edge)."""
    s = _severity(severity, x)
    b, _, h, w = x.shape
    angle = _rand(g, b, like=x).cpu() * 2 * math.pi
    frac = (0.2 + 0.3 * s).cpu()
    dx = torch.round(frac * w * torch.cos(angle)).long().tolist()
    dy = torch.round(frac * h * torch.sin(angle)).long().tolist()
    p = max(max(abs(v) for v in dx), max(abs(v) for v in dy), 1)
    padded = F.pad(x, (p, p, p, p), mode="replicate")
    # output pixel (i, j) shows input pixel (i - dy, j - dx)
    return torch.stack([padded[k, :, p - dy[k]:p - dy[k] + h, p - dx[k]:p - dx[k] + w] for k in range(b)])


def speckle(x, severity, g: torch.Generator):
    """Salt-and-pepper: a fraction 0.01 + 0.14 s of the pixels set to black or white."""
    s = _severity(severity, x).view(-1, 1, 1, 1)
    b, _, h, w = x.shape
    hit = _rand(g, b, 1, h, w, like=x) < 0.01 + 0.14 * s
    salt = (_rand(g, b, 1, h, w, like=x) < 0.5).to(x.dtype)
    return torch.where(hit, salt.expand_as(x), x)


_FUNCTIONS = {"blur": blur, "noise": noise, "oversaturate": oversaturate, "colour_cast": colour_cast,
              "pixelate": pixelate, "shift": shift, "speckle": speckle}


def degrade(x: torch.Tensor, kind: str, severity, g: torch.Generator) -> torch.Tensor:
    """Apply one named degradation (see `KINDS`) to every image of the batch."""
    if kind not in _FUNCTIONS:
        raise ValueError(f"unknown degradation {kind!r}; expected one of {KINDS}")
    return _FUNCTIONS[kind](x, severity, g)


def random_degrade(x: torch.Tensor, g: torch.Generator, low: float = 0.1, high: float = 1.0,
                   kinds: tuple[str, ...] = KINDS) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """Degrade each image with a random kind and a severity ~ U[low, high].

    Returns the degraded images, the kind of each, and the severities [B] (on the CPU)."""
    b = x.shape[0]
    sev = low + (high - low) * torch.rand(b, generator=g)
    which = torch.randint(len(kinds), (b,), generator=g).tolist()
    out = x.clone()
    for k, name in enumerate(kinds):  # one batched call per kind keeps the generator order fixed
        idx = [i for i in range(b) if which[i] == k]
        if idx:
            out[idx] = degrade(x[idx], name, sev[idx], g)
    return out, [kinds[i] for i in which], sev
