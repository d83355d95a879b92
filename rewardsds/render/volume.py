"""Emission-absorption volume rendering of a bounded radiance field, composed from callables.

A *field* is any callable ``field(points [N,3]) -> (sigma [N] >= 0, rgb [N,3] in [0,1])``. The
renderer chains: rays (`cameras.generate_rays`) -> `StratifiedSampler` (ray/box clipping, one jittered
sample per bin) -> field -> optional shader (`LambertianShader`) -> `composite` -> background blend.

Quadrature (Max 1995; NeRF, Mildenhall et al. 2020, Eq. 3), with delta_i the width of sample i's bin:

    alpha_i = 1 - exp(-sigma_i delta_i)
    T_i     = exp(-sum_{j<i} sigma_j delta_j)
    w_i     = T_i alpha_i
    rgb = sum_i w_i c_i,   opacity = sum_i w_i,   depth = sum_i w_i t_i / opacity
    image = rgb + (1 - opacity) * background

For a density that is constant (sigma) over the whole sampled interval of length L this gives
opacity = 1 - exp(-sigma L) exactly, whatever the number of samples (the product of the per-bin
transmittances telescopes); where the density jumps inside a bin (a surface) the error in optical
depth is at most sigma * delta per jump.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .cameras import Cameras, generate_rays

FieldFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


# --- sampling --------------------------------------------------------------------------------------

def ray_box(origins: torch.Tensor, dirs: torch.Tensor, bound: float
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab test against ``[-bound, bound]^3``: (near [R], far [R], hit [R]); near >= 0 (the ray
    starts at its origin); far = near where the ray misses."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0, t1 = (-bound - origins) * inv, (bound - origins) * inv
    near = torch.minimum(t0, t1).amax(-1).clamp_min(0.0)
    far = torch.maximum(t0, t1).amin(-1)
    hit = far > near
    return near, torch.where(hit, far, near), hit


@dataclass(frozen=True)
class RaySamples:
    t: torch.Tensor  # [R, S] distances along the rays
    delta: torch.Tensor  # [R, S] bin widths
    hit: torch.Tensor  # [R] whether the ray meets the box


@dataclass(frozen=True)
class StratifiedSampler:
    """S equal bins between the ray's entry and exit of the box, one sample per bin: uniformly inside
    the bin when `stratified` (training; NeRF Eq. 2), at the bin centre otherwise (evaluation)."""

    n_samples: int = 48
    bound: float = 1.0
    stratified: bool = True

    def __call__(self, origins: torch.Tensor, dirs: torch.Tensor,
                 generator: torch.Generator | None = None) -> RaySamples:
        near, far, hit = ray_box(origins, dirs, self.bound)
        s = self.n_samples
        width = ((far - near) / s)[:, None].expand(-1, s)
        left = near[:, None] + width * torch.arange(s, device=near.device, dtype=near.dtype)
        if self.stratified:
            u = torch.rand(left.shape, generator=generator).to(left.device)
        else:
            u = torch.full_like(left, 0.5)
        return RaySamples(left + u * width, width, hit)


# --- compositing -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Composite:
    rgb: torch.Tensor  # [R, 3] premultiplied foreground colour
    opacity: torch.Tensor  # [R]
    depth: torch.Tensor  # [R], 0 where nothing is hit
    weights: torch.Tensor  # [R, S]


def composite(sigma: torch.Tensor, rgb: torch.Tensor, t: torch.Tensor, delta: torch.Tensor) -> Composite:
    """Emission-absorption compositing (module docstring) of sigma [R,S], rgb [R,S,3]."""
    tau = sigma * delta  # optical depth of each bin
    alpha = 1.0 - torch.exp(-tau)
    # exclusive cumulative sum: T_i only counts the bins in front of bin i
    acc = torch.cumsum(tau, -1)
    trans = torch.exp(-torch.cat([torch.zeros_like(acc[:, :1]), acc[:, :-1]], -1))
    w = trans * alpha
    opacity = w.sum(-1)
    depth = (w * t).sum(-1) / opacity.clamp_min(1e-6)
    depth = torch.where(opacity > 1e-6, depth, torch.zeros_like(depth))
    return Composite((w[..., None] * rgb).sum(-2), opacity, depth, w)


# --- backgrounds: bg(dirs [B,H,W,3], generator) -> colours [B,H,W,3] ----------------------------------

@dataclass(frozen=True)
class SolidBackground:
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __call__(self, dirs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return dirs.new_tensor(self.color).expand_as(dirs)


@dataclass(frozen=True)
class RandomBackground:
    """One uniformly random colour per view, so the field cannot explain the prompt with its backdrop
    (DreamFusion's random-background augmentation)."""

    def __call__(self, dirs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        c = torch.rand(dirs.shape[0], 3, generator=generator).to(dirs)
        return c[:, None, None, :].expand_as(dirs)


class LearnedBackground(nn.Module):
    """A small MLP of the view direction with a sigmoid (DreamFusion's environment map), positionally
    encoded with `n_freqs` octaves so it can vary smoothly over the sphere of directions."""

    def __init__(self, n_freqs: int = 2, hidden: int = 16) -> None:
        super().__init__()
        self.n_freqs = n_freqs
        self.mlp = nn.Sequential(nn.Linear(3 + 6 * n_freqs, hidden), nn.ReLU(), nn.Linear(hidden, 3))

    def forward(self, dirs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        freqs = (2.0 ** torch.arange(self.n_freqs, device=dirs.device, dtype=dirs.dtype)) * torch.pi
        x = (dirs[..., None, :] * freqs[:, None]).flatten(-2)
        return torch.sigmoid(self.mlp(torch.cat([dirs, torch.sin(x), torch.cos(x)], -1)))


# --- shading -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LambertianShader:
    """``c = albedo * (ambient + (1 - ambient) max(0, n . l))`` with normals ``n = -grad sigma / |grad
    sigma|`` (DreamFusion section 3.1) taken by forward differences of step `eps`, since the density
    grid's trilinear interpolation has no second derivative to backpropagate through.
    `textureless` replaces the albedo by white (DreamFusion's geometry-only renders)."""

    ambient: float = 0.2
    eps: float = 1e-2
    textureless: bool = False

    def normals(self, field: FieldFn, points: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        density = getattr(field, "density", None) or (lambda p: field(p)[0])
        offsets = torch.eye(3, device=points.device, dtype=points.dtype) * self.eps
        shifted = density((points[:, None, :] + offsets).reshape(-1, 3)).view(-1, 3)
        grad = (shifted - sigma[:, None]) / self.eps
        return -torch.nn.functional.normalize(grad, dim=-1, eps=1e-8)

    def __call__(self, field: FieldFn, points: torch.Tensor, sigma: torch.Tensor, albedo: torch.Tensor,
                 light_dirs: torch.Tensor) -> torch.Tensor:
        n = self.normals(field, points, sigma)
        diffuse = (n * light_dirs).sum(-1, keepdim=True).clamp_min(0.0)
        base = torch.ones_like(albedo) if self.textureless else albedo
        return base * (self.ambient + (1.0 - self.ambient) * diffuse)


# --- the renderer ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RenderOutput:
    image: torch.Tensor  # [B,3,H,W] in [0,1], background blended in
    opacity: torch.Tensor  # [B,1,H,W]
    depth: torch.Tensor  # [B,1,H,W]
    foreground: torch.Tensor  # [B,3,H,W] premultiplied rgb before the background


class VolumeRenderer(nn.Module):
    """Renders B views of a field; a `LearnedBackground` is a submodule, so its parameters show up in
    ``renderer.parameters()`` for the optimiser. Rays are processed in chunks of `chunk` rays."""

    def __init__(self, sampler: StratifiedSampler | None = None, background: Callable | None = None,
                 shader: LambertianShader | None = None, chunk: int = 1 << 14) -> None:
        super().__init__()
        self.sampler = sampler or StratifiedSampler()
        self.background = SolidBackground() if background is None else background
        self.shader = shader
        self.chunk = chunk

    def render_rays(self, field: FieldFn, origins: torch.Tensor, dirs: torch.Tensor,
                    light_dirs: torch.Tensor | None = None, generator: torch.Generator | None = None,
                    shader: LambertianShader | None = None) -> Composite:
        """Composite of rays [R,3]; only rays that meet the box are sent to the field."""
        samples = self.sampler(origins, dirs, generator)
        r, s = samples.t.shape
        sigma = origins.new_zeros(r, s)
        rgb = origins.new_zeros(r, s, 3)
        idx = samples.hit.nonzero().squeeze(-1)
        if idx.numel():
            t = samples.t[idx]
            pts = origins[idx, None, :] + t[..., None] * dirs[idx, None, :]
            sig, col = field(pts.reshape(-1, 3))
            if shader is not None and light_dirs is not None:
                lights = light_dirs[idx, None, :].expand(-1, s, -1).reshape(-1, 3)
                col = shader(field, pts.reshape(-1, 3), sig, col, lights)
            sigma = sigma.index_put((idx,), sig.view(-1, s))
            rgb = rgb.index_put((idx,), col.view(-1, s, 3))
        return composite(sigma, rgb, samples.t, samples.delta)

    def forward(self, field: FieldFn, cameras: Cameras, height: int, width: int,
                generator: torch.Generator | None = None, background: Callable | None = None,
                shading: bool | None = None) -> RenderOutput:
        """`background` overrides the renderer's for this call (e.g. a solid colour for videos);
        `shading` False skips the shader (albedo renders), None uses it when one is set. The light
        sits at the camera (a headlight), so every lit side is a seen side."""
        origins, dirs = generate_rays(cameras, height, width)
        b = origins.shape[0]
        o, d = origins.reshape(-1, 3), dirs.reshape(-1, 3)
        shader = self.shader if shading in (None, True) else None
        light = torch.nn.functional.normalize(cameras.eye, dim=-1)[:, None, :].expand(b, height * width, 3)
        light = light.reshape(-1, 3).to(o)
        parts = [self.render_rays(field, o[k:k + self.chunk], d[k:k + self.chunk],
                                  light[k:k + self.chunk], generator, shader)
                 for k in range(0, o.shape[0], self.chunk)]
        rgb = torch.cat([p.rgb for p in parts]).view(b, height, width, 3)
        opacity = torch.cat([p.opacity for p in parts]).view(b, height, width, 1)
        depth = torch.cat([p.depth for p in parts]).view(b, height, width, 1)
        bg = (self.background if background is None else background)(dirs, generator)
        image = rgb + (1.0 - opacity) * bg
        chw = lambda x: x.permute(0, 3, 1, 2).contiguous()  # noqa: E731
        return RenderOutput(chw(image), chw(opacity), chw(depth), chw(rgb))
