"""3D Gaussians for text-to-3D (3D Gaussian Splatting, Kerbl et al. 2023; DreamGaussian, Tang et al. 2023):
the second 3D `Representation`, beside the radiance field. Only the representation changes: the same loop,
guidance, cameras, view prompts, rewards and candidate logic drive it.

Parameters of N Gaussians (SH degree 0, stored as 3DGS stores them, so a .ply is a plain dump):

    means [N,3]          position
    log_scales [N,3]     scale = exp(log_scales), the standard deviations along the rotated axes
    quats [N,4]          rotation (w, x, y, z), normalised when used
    opacity_logits [N]   opacity = sigmoid(opacity_logits)
    sh_dc [N,3]          colour = max(0, 0.5 + C0 sh_dc), C0 = 0.28209 (the degree-0 SH basis; gsplat's
                         activation for sh_degree 0)

Initialisation (DreamGaussian `Renderer.initialize` / `create_from_pcd`): `num_points` = 5000 centres
uniform in a ball of radius 0.5 (the field's initial blob), grey (sh_dc = 0), opacity 0.1, isotropic scales
= the root mean squared distance to the 3 nearest neighbours (3DGS's `distCUDA2`), identity rotations.

Learning rates, relative to the command's --lr (gen3d: 0.01), reproduce DreamGaussian's configs/text.yaml
at that value: means 0.1 lr (1e-3) decaying log-linearly to 0.002 lr (2e-5) over the first 60% of the run
(300 of its 500 steps; 3DGS `get_expon_lr_func`), colour 1 lr (1e-2), opacity 5 lr (5e-2), scales 0.5 lr
(5e-3), rotations 0.5 lr (5e-3); Adam eps 1e-15 (3DGS). A learned background takes lr x decoder_lr_scale,
as with the field.

Densification (`after_step`, 3DGS's adaptive density control; splatfacto's `step_post_backward`): every
step, the norm of each Gaussian's view-space positional gradient (d loss / d projected mean, in NDC units:
pixels x W/2, times the number of views since the loss averages over them; gsplat's DefaultStrategy) is
accumulated over the views that see it. Every `densify_every` = 100 steps until `densify_until` = 60% of the
run, Gaussians whose mean gradient is >= `grad_threshold` = 0.2 are cloned (max scale <= `split_scale` = 0.04,
DreamGaussian's percent_dense 0.01 x extent 4) or split into 2 samples of themselves with scales / 1.6
(larger ones), then Gaussians with opacity < 0.01 (DreamGaussian's min_opacity) or a max scale > 0.4
(0.1 x extent 4) are pruned; the total is capped at `max_gaussians` (the largest gradients win). As in 3DGS
(`cat_tensors_to_optimizer`, `_prune_optimizer`), each attribute becomes a new Parameter, swapped into the
optimiser's group with its Adam moments edited (kept rows, zeros for new ones). On resume the loop builds
Adam before loading; `load_state_dict` therefore loads the saved N rows into the existing Parameters, so the
optimiser (whose saved moments have N rows too) stays attached. DreamGaussian's opacity reset (every 700 steps) and
its 1-pixel screen-size pruning are not used: the former never fires in its own 500-step runs, and the
latter would remove almost every Gaussian at 32 px.

The gradient threshold is not DreamGaussian's 0.01: the norm depends on the loss's scale, and ours (the
surrogate with d loss / d x0 = grad / V in the world prior's pixel space) is larger. Measured
on the world prior ("a red circle", SDS, 4 views at 32 px, no densification), the mean gradient per Gaussian
over steps 0-99 has quantiles 10% 0.0002, 50% 0.054, 90% 0.30, 99% 0.74: 0.01 would clone or split 63% of
the set at every densification, 0.2 about 20% (the large ones, as the rule intends).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from ..priors.base import DiffusionPrior
from ..render.splat import SplatRenderer, Splats, covariances, quat_to_rotmat
from .base import Views
from .field_scene import (
    RenderConfig,
    ViewConfig,
    build_renderer,
    draw_cameras,
    render_resolution,
    to_prior_images,
    view_texts,
)

C0 = 0.28209479177387814  # the degree-0 real spherical harmonic, 1 / (2 sqrt(pi))
PARAMS = ("means", "log_scales", "quats", "opacity_logits", "sh_dc")


@dataclass(frozen=True)
class GaussianConfig:
    """The Gaussian set, its learning rates and its densification (module docstring for the sources)."""

    num_points: int = 5000
    """Gaussians at initialisation, uniform in a ball"""
    init_radius: float = 0.5
    """radius of that ball (the field's initial blob)"""
    init_opacity: float = 0.1
    bound: float = 1.0
    """half-size of the scene box (the mesh lattice spans it)"""
    means_lr: float = 0.1
    """learning rate of the positions relative to --lr, at the start ..."""
    means_lr_final: float = 0.002
    """... and after means_lr_steps of the run (log-linear decay)"""
    means_lr_steps: float = 0.6
    """fraction of the run over which the position learning rate decays"""
    color_lr: float = 1.0
    opacity_lr: float = 5.0
    scale_lr: float = 0.5
    rotation_lr: float = 0.5
    densify_every: int = 100
    """steps between densifications (0: never)"""
    densify_until: float = 0.6
    """no densification after this fraction of the run"""
    grad_threshold: float = 0.2
    """mean view-space positional gradient (NDC units) from which a Gaussian is cloned or split"""
    split_scale: float = 0.04
    """max scale above which a Gaussian is split rather than cloned"""
    prune_opacity: float = 0.01
    prune_scale: float = 0.4
    """Gaussians larger than this (max scale) are pruned"""
    max_gaussians: int = 20000
    backend: Literal["auto", "reference", "gsplat"] = "auto"
    """rasteriser: auto = gsplat on CUDA when installed (rewardsds[gsplat]), else the pure-PyTorch reference"""

    def __post_init__(self) -> None:
        if not 1 <= self.num_points <= self.max_gaussians:
            raise ValueError(f"gaussians.num_points must be in [1, max_gaussians={self.max_gaussians}], "
                             f"got {self.num_points}")
        if not 0 < self.init_radius <= self.bound:
            raise ValueError(f"gaussians.init_radius must be in (0, bound={self.bound}], got {self.init_radius}")
        if not 0 < self.init_opacity < 1 or not 0 <= self.prune_opacity < 1:
            raise ValueError("gaussians.init_opacity must be in (0, 1) and prune_opacity in [0, 1)")
        rates = (self.means_lr, self.means_lr_final, self.color_lr, self.opacity_lr, self.scale_lr, self.rotation_lr)
        if any(not (math.isfinite(r) and r > 0) for r in rates):
            raise ValueError(f"gaussians learning-rate factors must be finite and > 0, got {rates}")
        if not 0 < self.means_lr_steps <= 1 or not 0 <= self.densify_until <= 1:
            raise ValueError("gaussians.means_lr_steps must be in (0, 1] and densify_until in [0, 1]")
        if self.densify_every < 0 or self.grad_threshold < 0 or self.split_scale <= 0 or self.prune_scale <= 0:
            raise ValueError("gaussians.densify_every, grad_threshold must be >= 0 and split_scale, prune_scale > 0")
        if self.backend not in ("auto", "reference", "gsplat"):
            raise ValueError(f"unknown splat backend {self.backend!r}; expected auto, reference or gsplat")


def _inverse_sigmoid(x: float) -> float:
    return math.log(x / (1.0 - x))


def knn_scale(points: torch.Tensor, k: int = 3, chunk: int = 1024) -> torch.Tensor:
    """sqrt of the mean squared distance of each point to its k nearest others [N] (3DGS's distCUDA2)."""
    n = points.shape[0]
    if n <= 1:
        return torch.full((n,), 0.01, dtype=points.dtype, device=points.device)
    k = min(k, n - 1)
    out = []
    for s in range(0, n, chunk):
        d2 = torch.cdist(points[s:s + chunk], points).pow(2)
        d2[torch.arange(d2.shape[0]), torch.arange(s, s + d2.shape[0])] = float("inf")
        out.append(d2.topk(k, largest=False).values.mean(-1))
    return torch.cat(out).clamp_min(1e-7).sqrt()


class GaussianModel(nn.Module):
    """N Gaussians (module docstring). `splats()` gives the rasteriser's activated parameters; `density`
    and `field_fn` turn them into a point-query density for meshes."""

    def __init__(self, config: GaussianConfig | None = None, generator: torch.Generator | None = None,
                 n: int | None = None) -> None:
        super().__init__()
        self.config = c = config or GaussianConfig()
        n = c.num_points if n is None else n
        # uniform in the ball: uniform direction, radius r cbrt(u) (DreamGaussian)
        direction = nn.functional.normalize(torch.randn(n, 3, generator=generator), dim=-1)
        radius = c.init_radius * torch.rand(n, generator=generator).pow(1.0 / 3.0)
        means = direction * radius[:, None]
        self.means = nn.Parameter(means)
        self.log_scales = nn.Parameter(knn_scale(means).log()[:, None].repeat(1, 3))
        self.quats = nn.Parameter(torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1))
        self.opacity_logits = nn.Parameter(torch.full((n,), _inverse_sigmoid(c.init_opacity)))
        self.sh_dc = nn.Parameter(torch.zeros(n, 3))

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def bound(self) -> float:
        return self.config.bound

    def splats(self) -> Splats:
        return Splats(self.means, self.quats, torch.exp(self.log_scales), torch.sigmoid(self.opacity_logits),
                      (C0 * self.sh_dc + 0.5).clamp_min(0.0))

    # --- a density for meshes ----------------------------------------------------------------------
    @torch.no_grad()
    def field_fn(self, points: torch.Tensor, cutoff: float = 4.0, block: float = 0.25
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(density [P], rgb [P,3]) at points [P,3]: density = sum_i o_i exp(-1/2 d^T Sigma_i^-1 d), the
        peak-normalised Gaussians weighted by their opacities (DreamGaussian's `extract_fields`); rgb is the
        density-weighted mean colour. Points are grouped into cubes of side `block`, and each cube only sees
        the Gaussians within `cutoff` standard deviations (along their largest axis) of it."""
        dev = self.means.device
        pts = points.to(dev, torch.float32)
        s = self.splats()
        prec = torch.linalg.inv(covariances(s.quats, s.scales).double()).float()  # [N,3,3]
        reach = cutoff * s.scales.amax(-1)
        density = torch.zeros(pts.shape[0], device=dev)
        rgb = torch.zeros(pts.shape[0], 3, device=dev)
        cell = torch.floor(pts / block).long()
        key = (cell[:, 0] * 100003 + cell[:, 1]) * 100003 + cell[:, 2]
        uniq, group = torch.unique(key, return_inverse=True)
        order = torch.argsort(group)
        bounds = torch.cumsum(torch.bincount(group, minlength=uniq.numel()), 0).tolist()
        start = 0
        for end in bounds:
            cube = order[start:end]
            start = end
            lo, hi = pts[cube].amin(0), pts[cube].amax(0)
            near = ((s.means + reach[:, None] >= lo) & (s.means - reach[:, None] <= hi)).all(-1).nonzero().squeeze(-1)
            for i in range(0, cube.numel() if near.numel() else 0, 512):  # [512 points, 4096 Gaussians] at most
                idx = cube[i:i + 512]
                for k in range(0, near.numel(), 4096):
                    g = near[k:k + 4096]
                    d = pts[idx][:, None, :] - s.means[g][None]  # [p,g,3]
                    w = s.opacities[g] * torch.exp(-0.5 * torch.einsum("pgi,gij,pgj->pg", d, prec[g], d))
                    density[idx] += w.sum(-1)
                    rgb[idx] += w @ s.colors[g]
        rgb = rgb / density.clamp_min(1e-8)[:, None]
        rgb = torch.where(density[:, None] > 1e-8, rgb, torch.full_like(rgb, 0.5))
        return density, rgb.clamp(0, 1)

    def density(self, points: torch.Tensor) -> torch.Tensor:
        return self.field_fn(points)[0]

    # --- size changes and checkpoints --------------------------------------------------------------
    def to_checkpoint(self) -> dict:
        return {"config": asdict(self.config), "state": self.state_dict()}

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> GaussianModel:
        state = ckpt["state"]
        model = cls(GaussianConfig(**ckpt["config"]), n=1)
        model.load_state_dict(state)
        return model

    def load_state_dict(self, state: dict, strict: bool = True, assign: bool = False):
        """Any number of Gaussians: each Parameter keeps its identity and takes the saved rows, so an
        optimiser built on this model before loading (the loop's resume) stays attached to it."""
        missing = [k for k in PARAMS if k not in state]
        if missing and strict:
            raise RuntimeError(f"missing Gaussian parameters {missing}")
        n = {state[k].shape[0] for k in PARAMS if k in state}
        if len(n) > 1:
            raise RuntimeError(f"Gaussian parameters with different counts {sorted(n)}")
        for k in PARAMS:
            if k in state:
                p = getattr(self, k)
                p.data = state[k].to(p.device, p.dtype).clone()
                p.grad = None


def replace_parameter(module: nn.Module, name: str, rows: torch.Tensor, keep: torch.Tensor,
                      optimizer: torch.optim.Optimizer | None) -> nn.Parameter:
    """Replace ``module.<name>`` by a new Parameter holding its rows `keep` followed by `rows`, and move its
    Adam state over: the moments' kept rows, zeros for the new ones (3DGS's `_prune_optimizer` and
    `cat_tensors_to_optimizer`). A new Parameter rather than a resized one: the previous step's graph, still
    alive in the loop, caches the old leaf's shape."""
    old = getattr(module, name)
    new = nn.Parameter(torch.cat([old.detach()[keep], rows.to(old)]))
    setattr(module, name, new)
    if optimizer is None:
        return new
    for group in optimizer.param_groups:
        group["params"] = [new if q is old else q for q in group["params"]]
    state = optimizer.state.pop(old, None)
    if state:
        n_old, n_new = old.shape[0], rows.shape[0]
        for key, v in list(state.items()):
            if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == n_old:
                state[key] = torch.cat([v[keep], v.new_zeros((n_new, *v.shape[1:]))])
        optimizer.state[new] = state
    return new


class GaussianScene(nn.Module):
    """`Representation` of a Gaussian set (+ its renderer's learnable background, if any)."""

    def __init__(self, model: GaussianModel, renderer: SplatRenderer, prior: DiffusionPrior, prompt: str,
                 view: ViewConfig, total_steps: int, seed: int = 0, background_lr_scale: float = 0.1) -> None:
        super().__init__()
        self.model, self.renderer = model, renderer
        self.prompt, self.view, self.total_steps, self.seed = prompt, view, total_steps, int(seed)
        self.background_lr_scale = background_lr_scale
        self.__dict__["prior"] = prior  # used, not owned
        self._reset_stats()
        self._pending: tuple[torch.Tensor, torch.Tensor, int, int] | None = None
        self._densified: dict | None = None  # the last densification's counts, logged with the next step

    @property
    def config(self) -> GaussianConfig:
        return self.model.config

    def _reset_stats(self) -> None:
        n, dev = len(self.model), self.model.means.device
        self.grad_accum = torch.zeros(n, device=dev)
        self.grad_count = torch.zeros(n, device=dev)

    # --- Representation --------------------------------------------------------------------------------
    def param_groups(self, lr: float) -> list[dict]:
        c, m = self.config, self.model
        groups = [{"params": [m.means], "lr": self.means_lr(0, lr), "name": "means", "eps": 1e-15},
                  {"params": [m.sh_dc], "lr": lr * c.color_lr, "name": "sh_dc", "eps": 1e-15},
                  {"params": [m.opacity_logits], "lr": lr * c.opacity_lr, "name": "opacity_logits", "eps": 1e-15},
                  {"params": [m.log_scales], "lr": lr * c.scale_lr, "name": "log_scales", "eps": 1e-15},
                  {"params": [m.quats], "lr": lr * c.rotation_lr, "name": "quats", "eps": 1e-15}]
        if list(self.renderer.parameters()):
            groups.append({"params": list(self.renderer.parameters()), "lr": lr * self.background_lr_scale,
                           "name": "background"})
        self._base_lr = lr
        return groups

    def means_lr(self, step: int, lr: float) -> float:
        """3DGS's exponential decay: log-linear from means_lr to means_lr_final over means_lr_steps of the run."""
        c = self.config
        frac = min(1.0, step / max(1.0, c.means_lr_steps * self.total_steps))
        return lr * math.exp((1 - frac) * math.log(c.means_lr) + frac * math.log(c.means_lr_final))

    def views(self, step: int, generator: torch.Generator) -> Views:
        v, prior = self.view, self.prior
        res = render_resolution(step, self.total_steps, v.resolutions, v.milestones)
        cams = draw_cameras(v, generator).to(prior.device)
        n = len(self.model)
        out = self.renderer(self.model, cams, res, res, generator=generator)
        self._pending = None
        if out.means2d is not None and out.means2d.requires_grad:
            out.means2d.retain_grad()
            self._pending = (out.means2d, out.radii, res, v.views)
        x0 = prior.encode(to_prior_images(out.image, prior.image_size))
        prompts, reward_prompts = view_texts(self.prompt, v, cams)
        opacity = out.opacity.mean()
        log = {"resolution": res, "shaded": False, "opacity": round(float(opacity.detach()), 4),
               "prompts": sorted(set(prompts)), "gaussians": n}
        if self._densified is not None:
            log["densified"], self._densified = self._densified, None
        return Views(x0, prompts, shared=True, cameras=cams.c2w, reward_prompts=reward_prompts,
                     extra_loss=v.opacity_reg * opacity if v.opacity_reg else None, log=log)

    def after_step(self, step: int, optimizer: torch.optim.Optimizer) -> None:
        self._accumulate()
        c, done = self.config, step + 1
        if c.densify_every and done % c.densify_every == 0 and done <= c.densify_until * self.total_steps:
            self._densified = self.densify_and_prune(optimizer,
                                                     torch.Generator().manual_seed(self.seed * 1_000_003 + step))
        lr = getattr(self, "_base_lr", None)
        for g in optimizer.param_groups:
            if g.get("name") == "means" and lr is not None:
                g["lr"] = self.means_lr(done, lr)

    def _accumulate(self) -> None:
        """Add this step's view-space positional gradient norms (NDC units) of the Gaussians each view sees."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        means2d, radii, res, n_views = pending
        if means2d.grad is None or means2d.shape[1] != len(self.model):
            return
        g = means2d.grad.detach() * (0.5 * res * n_views)  # pixels -> NDC, and undo the mean over views
        seen = (radii > 0).to(g.device)
        self.grad_accum += (g.norm(dim=-1) * seen).sum(0).to(self.grad_accum)
        self.grad_count += seen.sum(0).to(self.grad_count)

    @torch.no_grad()
    def densify_and_prune(self, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> dict:
        """Clone / split / prune (module docstring); returns the counts. The optimiser's moments follow."""
        c, m = self.config, self.model
        n = len(m)
        grad = self.grad_accum / self.grad_count.clamp_min(1)
        scale = m.log_scales.exp().amax(-1)
        hot = grad >= c.grad_threshold
        room = max(0, c.max_gaussians - n)
        if int(hot.sum()) > room:  # the largest gradients win (a split adds one Gaussian net, a clone one)
            top = torch.topk(torch.where(hot, grad, torch.full_like(grad, -1.0)), room).indices
            hot = torch.zeros_like(hot)
            hot[top] = True
        clone = hot & (scale <= c.split_scale)
        split = hot & (scale > c.split_scale)
        ids_clone, ids_split = clone.nonzero().squeeze(-1), split.nonzero().squeeze(-1)
        # split: 2 children sampled from the parent Gaussian, scales / (0.8 * 2)
        parent = ids_split.repeat(2)
        std = m.log_scales[parent].exp()
        rot = quat_to_rotmat(m.quats[parent])
        offset = torch.randn(std.shape, generator=generator).to(std) * std
        rows = {name: torch.cat([getattr(m, name)[ids_clone], getattr(m, name)[parent]]) for name in PARAMS}
        rows["means"] = torch.cat([m.means[ids_clone], m.means[parent] + (rot @ offset[..., None]).squeeze(-1)])
        rows["log_scales"] = torch.cat([m.log_scales[ids_clone], m.log_scales[parent] - math.log(1.6)])
        opacity = torch.sigmoid(torch.cat([m.opacity_logits, rows["opacity_logits"]]))
        big = torch.cat([scale, rows["log_scales"].exp().amax(-1)]) > c.prune_scale
        drop = (opacity < c.prune_opacity) | big
        drop[:n] |= split  # parents of splits are replaced by their children
        if bool(drop.all()):  # never prune the set away entirely: keep the most opaque Gaussian
            drop[torch.argmax(opacity)] = False
        keep_old, keep_new = ~drop[:n], ~drop[n:]
        added = {k: v[keep_new] for k, v in rows.items()}
        for name in PARAMS:
            replace_parameter(m, name, added[name], keep_old, optimizer)
        self._reset_stats()
        return {"cloned": int(clone.sum()), "split": int(split.sum()), "pruned": int(drop.sum()) - int(split.sum()),
                "gaussians": len(m)}

    def frame(self):
        return None  # the turntable video is made from the finished set

    def state_dict(self, *args, **kwargs) -> dict:
        return {"model": {k: getattr(self.model, k).detach() for k in PARAMS},
                "renderer": self.renderer.state_dict(),
                "stats": {"grad_accum": self.grad_accum, "grad_count": self.grad_count}, "seed": self.seed,
                "densified": self._densified}

    def load_state_dict(self, state: dict, strict: bool = True):
        self.model.load_state_dict(state["model"], strict=strict)
        self.renderer.load_state_dict(state["renderer"], strict=strict)
        dev = self.model.means.device
        self.grad_accum = state["stats"]["grad_accum"].to(dev).clone()
        self.grad_count = state["stats"]["grad_count"].to(dev).clone()
        self.seed = int(state["seed"])  # the split samples' seeds (drawn at construction from the run's generator)
        self._densified = state.get("densified")
        self._pending = None


def new_gaussian_scene(config: GaussianConfig, render: RenderConfig, prior: DiffusionPrior, prompt: str,
                       view: ViewConfig, total_steps: int, generator: torch.Generator) -> GaussianScene:
    """A fresh Gaussian ball (seeded from `generator`) and its renderer (the field's background choice), on the
    prior's device."""
    model = GaussianModel(config, generator=generator).to(prior.device)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    background = build_renderer(render).background  # the field's choice: solid, random or learned
    renderer = SplatRenderer(background, config.backend).to(prior.device)
    return GaussianScene(model, renderer, prior, prompt, view, total_steps, seed, view.decoder_lr_scale)
