"""Differentiable rasterisation of 3D Gaussians (3D Gaussian Splatting, Kerbl et al. 2023): a pure-PyTorch
reference and, on CUDA, gsplat (Ye et al. 2024) behind ONE function, `rasterize`, returning `RenderOutput`.

A Gaussian i has a mean mu_i, a covariance Sigma_i = R_i S_i S_i^T R_i^T (R from a unit quaternion
w x y z, S = diag(scales)), an opacity o_i in (0, 1) and a colour c_i. For a camera (conventions of
`cameras`: y up, looking along -z) with world-to-camera rotation W and focal length f in pixels:

    mean     (u, v) = (W/2 + f x / z,  H/2 - f y / z),   (x, y, -z) = the mean in camera space
    Sigma'   = J W Sigma W^T J^T + eps2d I               (EWA splatting, Zwicker et al. 2002)
    J        = [[f/z, 0, f x / z^2], [0, -f/z, -f y / z^2]]   (d(u, v) / d(camera point))
    alpha_i(p) = min(0.999, o_i exp(-1/2 (p - mean)^T Sigma'^-1 (p - mean)))   at pixel centre p

eps2d = 0.3 px^2 is the low-pass dilation of 3DGS and gsplat, and x/z, y/z are clamped to 1.3 tan(fov/2)
inside J only (both do the same, so far off-screen Gaussians cannot blow up). Each pixel composites the
Gaussians that cover it front to back, sorted by the depth z of their means:

    T_i = prod_{j<i} (1 - alpha_j),   rgb = sum_i T_i alpha_i c_i,   opacity = sum_i T_i alpha_i
    depth = sum_i T_i alpha_i z_i / opacity,   image = rgb + (1 - opacity) background

As in gsplat's kernel, contributions with alpha < 1/255 are skipped and a pixel stops at the Gaussian
that would take T to 1e-4 or below. A Gaussian's pixels are those within e standard deviations of its
mean along each image axis, e = sqrt(2 ln(255 o)): beyond, alpha < 1/255 anyway, so this culling is exact.

The reference enumerates (Gaussian, pixel) pairs in that box (no tiles: fine for a few thousand
Gaussians at 32-64 px on a CPU), sorts them by (pixel, depth), packs each pixel's list into a
[pixels, max-overlap] table and composites with a cumulative sum of log(1 - alpha). Memory is bounded by
the number of pairs (about N x footprint), not N x pixels. gsplat's `rasterization` computes the same
image with tiles on the GPU (`rewardsds[gsplat]`; imported only when that backend is used).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .cameras import Cameras, focal_length, generate_rays
from .volume import RenderOutput, SolidBackground

Backend = Literal["auto", "reference", "gsplat"]
ALPHA_MIN = 1.0 / 255.0  # gsplat / 3DGS: fainter contributions are skipped
ALPHA_MAX = 0.999  # gsplat's clamp (3DGS: 0.99)
T_MIN = 1e-4  # a pixel stops before its transmittance would fall to this
NEAR = 0.01  # gsplat's near_plane: Gaussians closer than this (or behind) are culled
EPS2D = 0.3  # gsplat's eps2d / 3DGS's dilation, px^2
JACOBIAN_CLAMP = 1.3  # x/z clamped to 1.3 tan(fov_x / 2) in J (3DGS, gsplat)


@dataclass(frozen=True)
class Splats:
    """Activated Gaussian parameters: what a rasteriser draws."""

    means: torch.Tensor  # [N,3] world positions
    quats: torch.Tensor  # [N,4] rotations (w, x, y, z), normalised by the rasteriser
    scales: torch.Tensor  # [N,3] standard deviations along the rotated axes (> 0)
    opacities: torch.Tensor  # [N] in (0, 1)
    colors: torch.Tensor  # [N,3] rgb (>= 0)

    def __len__(self) -> int:
        return int(self.means.shape[0])


@dataclass(frozen=True)
class SplatOutput(RenderOutput):
    """`RenderOutput` plus what densification needs: the projected means [B,N,2] in pixels (their
    gradient is the view-space positional gradient; call `retain_grad()` before backward) and each
    Gaussian's pixel radius per view [B,N] (0: culled or off-image)."""

    means2d: torch.Tensor | None = None
    radii: torch.Tensor | None = None


# --- geometry --------------------------------------------------------------------------------------

def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [N,3,3] of quaternions (w, x, y, z) [N,4], normalised first."""
    w, x, y, z = nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).view(-1, 3, 3)


def covariances(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Sigma = R S S^T R^T [N,3,3]."""
    m = quat_to_rotmat(quats) * scales[:, None, :]
    return m @ m.transpose(-1, -2)


@dataclass(frozen=True)
class Projection:
    means2d: torch.Tensor  # [B,N,2] (u, v) pixels
    cov2d: torch.Tensor  # [B,N,2,2] with the eps2d dilation
    depth: torch.Tensor  # [B,N] camera depth z of the means
    valid: torch.Tensor  # [B,N] in front of the near plane with a positive-definite footprint


def project_gaussians(means: torch.Tensor, covs: torch.Tensor, cameras: Cameras, height: int, width: int,
                      eps2d: float = EPS2D, near: float = NEAR) -> Projection:
    """Means and 3D covariances [N,3], [N,3,3] -> image-space means and 2D covariances per camera
    (module docstring; the same pixel convention as `cameras.project`)."""
    c2w = cameras.c2w.to(means)
    w2c = torch.linalg.inv(c2w)
    rot, trans = w2c[:, :3, :3], w2c[:, :3, 3]
    p = torch.einsum("bij,nj->bni", rot, means) + trans[:, None, :]  # [B,N,3]
    x, y, z = p.unbind(-1)
    z = -z  # depth: the camera looks along -z
    valid = z > near
    zs = torch.where(valid, z, torch.ones_like(z))  # keep culled ones finite (their output is masked)
    f = focal_length(cameras.fov, width).to(means)[:, None]  # [B,1]
    u = 0.5 * width + f * x / zs
    v = 0.5 * height - f * y / zs
    lim_x = JACOBIAN_CLAMP * 0.5 * width / f
    lim_y = JACOBIAN_CLAMP * 0.5 * height / f
    tx = zs * torch.maximum(torch.minimum(x / zs, lim_x), -lim_x)
    ty = zs * torch.maximum(torch.minimum(y / zs, lim_y), -lim_y)
    zero = torch.zeros_like(zs)
    jac = torch.stack([f / zs, zero, f * tx / zs**2, zero, -f / zs, -f * ty / zs**2], -1).view(*zs.shape, 2, 3)
    m = jac @ rot[:, None]  # [B,N,2,3]
    cov2d = m @ covs[None] @ m.transpose(-1, -2)
    cov2d = cov2d + eps2d * torch.eye(2, dtype=means.dtype, device=means.device)
    det = cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] ** 2
    return Projection(torch.stack([u, v], -1), cov2d, z, valid & (det > 0))


# --- the reference rasteriser ----------------------------------------------------------------------

def _footprints(proj: Projection, opacities: torch.Tensor, height: int, width: int):
    """Per (camera, Gaussian): the pixel box [x0, x1] x [y0, y1] of its visible footprint and its radius
    (0 when nothing of it is visible)."""
    with torch.no_grad():
        o = opacities.detach()[None].expand_as(proj.depth)
        visible = proj.valid & (o >= ALPHA_MIN)
        ext = torch.sqrt(2.0 * torch.log((o * 255.0).clamp_min(1.0)))  # alpha = 1/255 at e sigmas
        cov = proj.cov2d.detach()
        rx = torch.ceil(ext * cov[..., 0, 0].clamp_min(0).sqrt())
        ry = torch.ceil(ext * cov[..., 1, 1].clamp_min(0).sqrt())
        u, v = proj.means2d.detach().unbind(-1)
        # pixel j (centre j + 0.5) is inside when |j + 0.5 - u| <= r
        x0 = torch.ceil(u - rx - 0.5).clamp(0, width)
        x1 = torch.floor(u + rx - 0.5).clamp(-1, width - 1)
        y0 = torch.ceil(v - ry - 0.5).clamp(0, height)
        y1 = torch.floor(v + ry - 0.5).clamp(-1, height - 1)
        visible &= (x1 >= x0) & (y1 >= y0) & torch.isfinite(u) & torch.isfinite(v)
        radii = torch.where(visible, torch.maximum(rx, ry), torch.zeros_like(rx)).long()
    return visible, x0.long(), x1.long(), y0.long(), y1.long(), radii


def rasterize_reference(splats: Splats, cameras: Cameras, height: int, width: int, eps2d: float = EPS2D
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rgb [B,H,W,3] premultiplied, opacity [B,H,W,1], depth [B,H,W,1], means2d [B,N,2], radii [B,N])."""
    means, colors, opac = splats.means, splats.colors, splats.opacities
    b, n, dev, dt = len(cameras), len(splats), means.device, means.dtype
    covs = covariances(splats.quats, splats.scales)
    proj = project_gaussians(means, covs, cameras, height, width, eps2d)
    visible, x0, x1, y0, y1, radii = _footprints(proj, opac, height, width)
    hw = height * width

    # per visible (camera, Gaussian) instance: conic (inverse 2D covariance), mean, depth rank
    cam, gid = visible.nonzero(as_tuple=True)
    flat = cam * n + gid
    cov = proj.cov2d.reshape(-1, 2, 2)[flat]
    det = cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] ** 2
    conic = torch.stack([cov[:, 1, 1], -cov[:, 0, 1], cov[:, 0, 0]], -1) / det[:, None]
    mean2d = proj.means2d.reshape(-1, 2)[flat]
    z = proj.depth.reshape(-1)[flat]
    rank = torch.empty(b, n, dtype=torch.long, device=dev)
    rank.scatter_(1, torch.argsort(proj.depth.detach(), dim=1), torch.arange(n, device=dev).expand(b, n).contiguous())
    rank = rank.reshape(-1)[flat]
    bx0, by0 = x0.reshape(-1)[flat], y0.reshape(-1)[flat]
    bw = x1.reshape(-1)[flat] - bx0 + 1
    counts = bw * (y1.reshape(-1)[flat] - by0 + 1)

    # enumerate the pixels of every footprint box: pair p belongs to instance inst[p]
    inst = torch.repeat_interleave(torch.arange(flat.numel(), device=dev), counts)
    local = torch.arange(inst.numel(), device=dev) - (torch.cumsum(counts, 0) - counts)[inst]
    bwi = bw[inst]
    px = bx0[inst] + local % bwi
    py = by0[inst] + torch.div(local, bwi, rounding_mode="floor")

    # alpha of each pair (differentiable in the means, covariances, opacities)
    d = torch.stack([px.to(dt) + 0.5, py.to(dt) + 0.5], -1) - mean2d[inst]
    q = conic[inst]
    power = -0.5 * (q[:, 0] * d[:, 0] ** 2 + q[:, 2] * d[:, 1] ** 2) - q[:, 1] * d[:, 0] * d[:, 1]
    alpha = (opac[gid[inst]] * torch.exp(power)).clamp(max=ALPHA_MAX)
    keep = (alpha.detach() >= ALPHA_MIN).nonzero().squeeze(-1)
    inst, alpha = inst[keep], alpha[keep]
    pix = cam[inst] * hw + py[keep] * width + px[keep]

    # sort by (pixel, depth); transmittance by a segmented cumulative sum of log(1 - alpha) (in float64:
    # the running sum over all pairs is large, a pixel's part of it small)
    order = torch.argsort(pix * n + rank[inst])
    pix, inst, alpha = pix[order], inst[order], alpha[order]
    log_t = torch.log1p(-alpha).double()
    incl = torch.cumsum(log_t, 0)
    per_pixel = torch.bincount(pix, minlength=b * hw)
    first = torch.cumsum(per_pixel, 0) - per_pixel  # index of each pixel's first pair
    before = (incl - log_t)[first.clamp(max=max(pix.numel() - 1, 0))][pix] if pix.numel() else incl
    t_excl = torch.exp(incl - log_t - before)
    alive = (incl - before).detach() > math.log(T_MIN)  # gsplat stops before T would reach 1e-4
    w = (t_excl.to(dt) * alpha) * alive

    rgb = torch.zeros(b * hw, 3, dtype=dt, device=dev).index_add(0, pix, w[:, None] * colors[gid[inst]])
    acc = torch.zeros(b * hw, dtype=dt, device=dev).index_add(0, pix, w)
    zsum = torch.zeros(b * hw, dtype=dt, device=dev).index_add(0, pix, w * z[inst])
    depth = torch.where(acc > 1e-6, zsum / acc.clamp_min(1e-6), torch.zeros_like(zsum))
    return (rgb.view(b, height, width, 3), acc.view(b, height, width, 1), depth.view(b, height, width, 1),
            proj.means2d, radii)


# --- gsplat ----------------------------------------------------------------------------------------

def gsplat_cameras(cameras: Cameras, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """gsplat's (OpenCV: x right, y down, looking along +z) world-to-camera matrices [B,4,4] and
    intrinsics [B,3,3] for our cameras; principal point at the image centre, square pixels."""
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], device=cameras.c2w.device))
    viewmats = flip @ torch.linalg.inv(cameras.c2w.float())
    f = focal_length(cameras.fov, width).to(viewmats)
    ks = torch.zeros(len(cameras), 3, 3, device=viewmats.device)
    ks[:, 0, 0], ks[:, 1, 1], ks[:, 0, 2], ks[:, 1, 2], ks[:, 2, 2] = f, f, 0.5 * width, 0.5 * height, 1.0
    return viewmats, ks


def rasterize_gsplat(splats: Splats, cameras: Cameras, height: int, width: int, eps2d: float = EPS2D
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same outputs as `rasterize_reference`, from `gsplat.rasterization` (CUDA tensors only)."""
    from .._compat import require

    gsplat = require("gsplat", "gsplat", "the CUDA splat rasteriser")
    if splats.means.device.type != "cuda":
        raise ValueError("the gsplat backend rasterises CUDA tensors; use the reference backend on the CPU")
    viewmats, ks = gsplat_cameras(cameras.to(splats.means.device), height, width)
    colors, alphas, meta = gsplat.rasterization(
        splats.means, splats.quats, splats.scales, splats.opacities, splats.colors, viewmats, ks, width, height,
        near_plane=NEAR, eps2d=eps2d, sh_degree=None, packed=False, render_mode="RGB+ED",
        rasterize_mode="classic")
    radii = meta["radii"]
    if radii.dim() == 3:  # gsplat >= 1.5 gives (x, y) radii
        radii = radii.amax(-1)
    depth = torch.where(alphas > 1e-6, colors[..., 3:], torch.zeros_like(alphas))
    return colors[..., :3], alphas, depth, meta["means2d"], radii.long()


def resolve_backend(backend: Backend, device: torch.device) -> Literal["reference", "gsplat"]:
    """auto: gsplat on CUDA when it is installed, else the reference."""
    if backend != "auto":
        return backend
    if device.type == "cuda":
        import importlib.util

        if importlib.util.find_spec("gsplat") is not None:
            return "gsplat"
    return "reference"


def rasterize(splats: Splats, cameras: Cameras, height: int, width: int, background: Callable | None = None,
              generator: torch.Generator | None = None, backend: Backend = "auto", eps2d: float = EPS2D
              ) -> SplatOutput:
    """THE splat renderer: B views [B,3,H,W] of `splats` with `background(dirs [B,H,W,3], generator)`
    (the callables of `rewardsds.render.volume`; white when None) blended in behind them."""
    which = resolve_backend(backend, splats.means.device)
    fn = rasterize_gsplat if which == "gsplat" else rasterize_reference
    rgb, acc, depth, means2d, radii = fn(splats, cameras, height, width, eps2d)
    bg_fn = SolidBackground() if background is None else background
    if isinstance(bg_fn, SolidBackground):  # no rays needed
        bg = rgb.new_tensor(bg_fn.color).expand_as(rgb)
    else:
        _, dirs = generate_rays(cameras.to(rgb.device), height, width)
        bg = bg_fn(dirs.to(rgb.dtype), generator).to(rgb)
    chw = lambda x: x.permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return SplatOutput(chw(rgb + (1.0 - acc) * bg), chw(acc), chw(depth), chw(rgb), means2d, radii)


class SplatRenderer(nn.Module):
    """`rasterize` with a background (a `LearnedBackground` is a submodule, so its parameters reach the
    optimiser) and a backend, called like `VolumeRenderer`: ``renderer(gaussians, cameras, H, W,
    generator=, background=, shading=)``, so the turntable and view-grid exporters take either. `gaussians`
    is a `Splats` or anything with a ``splats()`` method. Shading is not supported (albedo only)."""

    def __init__(self, background: Callable | None = None, backend: Backend = "auto") -> None:
        super().__init__()
        self.background = SolidBackground() if background is None else background
        self.backend = backend

    def forward(self, gaussians, cameras: Cameras, height: int, width: int, generator: torch.Generator | None = None,
                background: Callable | None = None, shading: bool | None = None) -> SplatOutput:
        if shading:
            raise ValueError("the splat renderer has no shading (albedo renders only)")
        splats = gaussians if isinstance(gaussians, Splats) else gaussians.splats()
        return rasterize(splats, cameras.to(splats.means.device), height, width,
                         self.background if background is None else background, generator, self.backend)
