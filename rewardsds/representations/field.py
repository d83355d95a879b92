"""The 3D representation: a bounded radiance field in pure PyTorch.

Features come from a few dense feature grids of increasing resolution (a dense, hash-free cousin of
Instant-NGP's multiresolution encoding, Mueller et al. 2022), each read by trilinear interpolation
(`grid_sample` on a 5D volume); a tiny MLP decodes them (plus the position) into density and colour:

    f(x)     = [ trilerp(G_1, x), ..., trilerp(G_L, x), x / bound ]
    sigma(x) = softplus(h_sigma(f(x)) + b(x))        (or exp, clipped)
    c(x)     = sigmoid(h_rgb(f(x)))

The density bias ``b(x) = lambda (1 - |x| / r)`` is the centred "blob" of Magic3D / threestudio
(DreamFusion uses a Gaussian ``lambda exp(-|x|^2 / (2 nu^2))`` for the same purpose): at
initialisation the field is a soft ball of radius about r, so the first renders already show an
object for the prior to sculpt. Outside the box ``[-bound, bound]^3`` the density is zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn


@dataclass(frozen=True)
class FieldConfig:
    bound: float = 1.0
    """half-size of the scene box"""
    resolutions: tuple[int, ...] = (16, 32, 64)
    """voxels per side of each feature grid"""
    features: int = 4
    """features per grid level"""
    hidden: int = 32
    """width of the decoder's hidden layer"""
    density_activation: Literal["softplus", "exp"] = "softplus"
    blob_density: float = 10.0
    """lambda: the density bias at the centre"""
    blob_radius: float = 0.5
    """r: the bias crosses zero at this radius"""
    init_std: float = 0.05
    """std of the initial grid features (small, so the first renders are the blob)"""

    def __post_init__(self) -> None:
        if self.bound <= 0 or self.blob_radius <= 0:
            raise ValueError("bound and blob_radius must be positive")
        if not self.resolutions or min(self.resolutions) < 2:
            raise ValueError(f"each grid needs at least 2 voxels per side, got {self.resolutions}")
        if self.density_activation not in ("softplus", "exp"):
            raise ValueError(f"unknown density activation {self.density_activation!r}")


class RadianceField(nn.Module):
    """``field(points [N,3]) -> (sigma [N], rgb [N,3])``, the callable `rewardsds.render` expects."""

    def __init__(self, config: FieldConfig | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = cfg = config or FieldConfig()
        self.grids = nn.ParameterList(
            nn.Parameter(cfg.init_std * torch.randn(1, cfg.features, r, r, r, generator=generator))
            for r in cfg.resolutions)
        n_in = cfg.features * len(cfg.resolutions) + 3
        self.decoder = nn.Sequential(nn.Linear(n_in, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, 4))
        if generator is not None:  # a seeded run is reproducible down to the decoder's init
            for m in self.decoder:
                if isinstance(m, nn.Linear):
                    bound = 1.0 / m.in_features ** 0.5
                    with torch.no_grad():
                        m.weight.uniform_(-bound, bound, generator=generator)
                        m.bias.uniform_(-bound, bound, generator=generator)

    @property
    def bound(self) -> float:
        return self.config.bound

    def encode(self, points: torch.Tensor) -> torch.Tensor:
        """Grid features of every level and the normalised position, [N, L*F + 3]."""
        x = points / self.config.bound  # grid_sample's [-1, 1] (align_corners: the box's corners)
        # grid_sample reads (x, y, z) as (W, H, D): the grids are stored [C, z, y, x]
        g = x.view(1, -1, 1, 1, 3).to(self.grids[0].dtype)
        feats = [nn.functional.grid_sample(grid, g, mode="bilinear", padding_mode="border",
                                           align_corners=True).view(grid.shape[1], -1).t()
                 for grid in self.grids]
        return torch.cat(feats + [x], -1)

    def density_bias(self, points: torch.Tensor) -> torch.Tensor:
        c = self.config
        return c.blob_density * (1.0 - points.norm(dim=-1) / c.blob_radius)

    def _activate(self, raw: torch.Tensor) -> torch.Tensor:
        if self.config.density_activation == "softplus":
            return nn.functional.softplus(raw)
        return torch.exp(raw.clamp(max=15.0))  # clipped so that one bad step cannot overflow

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.decoder(self.encode(points))
        sigma = self._activate(out[:, 0] + self.density_bias(points))
        inside = (points.abs() <= self.config.bound).all(-1)
        sigma = torch.where(inside, sigma, torch.zeros_like(sigma))
        return sigma, torch.sigmoid(out[:, 1:])

    def density(self, points: torch.Tensor) -> torch.Tensor:
        return self(points)[0]

    def param_groups(self, lr: float, decoder_lr_scale: float = 0.1) -> list[dict]:
        """Adam groups: the grids take `lr` (each voxel only sees a few rays, so it needs large steps);
        the shared decoder a tenth of it, as with Instant-NGP style encodings."""
        return [{"params": list(self.grids.parameters()), "lr": lr},
                {"params": list(self.decoder.parameters()), "lr": lr * decoder_lr_scale}]

    # --- checkpoints -------------------------------------------------------------------------------
    def to_checkpoint(self) -> dict:
        return {"config": asdict(self.config), "state": self.state_dict()}

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> RadianceField:
        cfg = dict(ckpt["config"])
        cfg["resolutions"] = tuple(cfg["resolutions"])
        field = cls(FieldConfig(**cfg))
        field.load_state_dict(ckpt["state"])
        return field


@torch.no_grad()
def query_grid(fn, bound: float, resolution: int, chunk: int = 1 << 16,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """Evaluate ``fn(points [N,3]) -> [N, ...]`` on a resolution^3 lattice over ``[-bound, bound]^3``
    spanning the box's corners; the result (on the CPU) is indexed [i_x, i_y, i_z, ...], the order
    marching cubes expects. `device` is where `fn` wants its points."""
    axis = torch.linspace(-bound, bound, resolution)
    pts = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).view(-1, 3)
    out = torch.cat([fn(pts[k:k + chunk].to(device)).cpu() for k in range(0, pts.shape[0], chunk)])
    return out.view(resolution, resolution, resolution, *out.shape[1:])
