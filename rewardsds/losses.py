"""Score-distillation gradients, optionally reward-weighted (RewardSDS, paper Eq. 4-5).

Every method computes, for one shared timestep t and N noises eps_i, a per-noise residual r_i and
the gradient on x0 (the image in the prior's model space):

    grad = w(t) * sum_i w_i r_i,        w(t) = 1 - alpha_bar_t   (time_weighting "sds", DreamFusion)
                                          or 1               (time_weighting "constant"),

with w_i from the rewards of the candidates' previews (weighting.py) on reward steps, and a single
noise (w_1 = 1) on plain steps. The residuals:

| method  | r_i                                                                  |
|---------|----------------------------------------------------------------------|
| sds     | eps_hat(x_t^i, y) - eps_i                       (DreamFusion)        |
| vsd     | eps_hat(x_t^i, y) - eps_phi(x_t^i, y)           (ProlificDreamer)    |
| bridge  | stage 1: SDS; stage 2: s (eps(x_t^i, y+tgt) - eps(x_t^i, y+src))     |
| dds     | eps_hat(z_t^i, y_tgt) - eps_hat(zsrc_t^i, y_src) (same t and eps_i)  |

w(t) = 1 is the DDS reference's weighting (Hertz et al. 2023: w = 1, t in [50, 950]); the prior
family's defaults choose it for DDS on Stable Diffusion (defaults.FamilyDefaults), "sds" everywhere else.

SDS also has the x0-reconstruction form of the official 3D code (`GuidanceConfig.x0_recon`,
threestudio's MVDream `recon_loss`): r_i = x0 - x0_target_i with no w(t) (`recon_residual`).

The gradient enters autograd through the stop-gradient surrogate ``0.5 ||x0 - sg(x0 - grad)||^2 / B``
so any optimiser applies; non-finite gradients are reported (the loop skips such steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch

from .candidates import (
    PREVIEW_SCHEDULES,
    Candidates,
    PreviewSchedule,
    by_image,
    candidate_conditioning,
    candidate_rows,
    noise_candidates,
    preview,
    to_rows,
    x0_from_eps,
)
from .errors import RewardError
from .priors.base import DiffusionPrior, EpsPrediction, TextEmbedding
from .rewards.base import Reward
from .schedules import sds_weight
from .weighting import Weighting

Method = Literal["sds", "reward-sds", "vsd", "reward-vsd", "bridge", "reward-bridge", "dds", "reward-dds"]
TimeWeighting = Literal["sds", "constant"]
METHODS: tuple[str, ...] = ("sds", "reward-sds", "vsd", "reward-vsd", "bridge", "reward-bridge", "dds",
                            "reward-dds")
TextMethod = Literal["sds", "reward-sds", "vsd", "reward-vsd", "bridge", "reward-bridge"]
TEXT_METHODS: tuple[str, ...] = tuple(m for m in METHODS if not m.endswith("dds"))
"""methods that distil a text prompt from scratch (text-to-image, text-to-3D, sweeps)"""
EDIT_METHODS: tuple[str, ...] = ("dds", "reward-dds")
"""methods that edit a source image (they need its prompt)"""
BRIDGE_SRC = (", oversaturated, smooth, pixelated, cartoon, foggy, hazy, blurry, bad structure, noisy, "
              "malformed")
BRIDGE_TGT = ", detailed high resolution, high quality, sharp"


@dataclass(frozen=True)
class GuidanceConfig:
    method: Method = "reward-sds"
    cfg: float = 100.0
    """guidance scale of the distillation gradient (SDS 100, VSD 7.5, bridge 40, DDS 7.5)"""
    preview_cfg: float = 7.5
    """guidance scale of the candidates' S-step preview"""
    n_noises: int = 4
    """N: candidates per step on reward steps"""
    denoise_steps: int = 1
    """S: DDIM steps of each candidate's preview (1 = exact x0 prediction)"""
    preview_schedule: PreviewSchedule = "from-t"
    """the preview's grid (candidates.py): "from-t" = S steps over [0, t], always S prior calls;
    "global" = the paper's S-step grid over [0, T] from t down, 1 + #{grid points below t} calls
    (T=1000, S=15: about t/67 + 1, 8 on average)"""
    x0_recon: bool = False
    """sds only: the x0-reconstruction form of the gradient that the official 3D code uses
    (threestudio's MVDream guidance, `recon_loss`): grad = x0 - x0_target, x0_target the x0 predicted
    from the CFG epsilon, std-rescaled by recon_std_rescale toward the conditional prediction's std, no
    w(t). Chosen per prior by the command (gen3d: on for latent/Stable Diffusion priors, off for the
    pixel-space world prior); off everywhere else"""
    recon_std_rescale: float = 0.5
    """x0_recon: blend of the std-rescaled target (0 = plain CFG x0; official 0.5)"""
    weighting: Weighting = field(default_factory=Weighting)
    negative_prompt: str = ""
    bridge_switch: float = 0.5
    """bridge: fraction of the steps after which stage 2 (src->tgt) starts"""
    bridge_src: str = BRIDGE_SRC
    bridge_tgt: str = BRIDGE_TGT
    time_weighting: TimeWeighting = "sds"
    """w(t) of the gradient: "sds" = 1 - alpha_bar_t, "constant" = 1 (module docstring)"""
    vsd_lr: float = 3e-4
    """VSD particle model's learning rate (AdamW, no weight decay)"""
    vsd_lora_rank: int = 0
    """VSD particle model: 0 = a trainable copy of the prior's network; > 0 = LoRA of that rank (peft)"""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; expected one of {', '.join(METHODS)}")
        if self.n_noises < 1:
            raise ValueError(f"n_noises (N) must be >= 1, got {self.n_noises}")
        if self.denoise_steps < 1:
            raise ValueError(f"denoise_steps (S) must be >= 1, got {self.denoise_steps}")
        if self.preview_schedule not in PREVIEW_SCHEDULES:
            raise ValueError(f"unknown preview_schedule {self.preview_schedule!r}; expected one of "
                             f"{', '.join(PREVIEW_SCHEDULES)}")
        if self.x0_recon and self.method.removeprefix("reward-") != "sds":
            raise ValueError(f"x0_recon is a form of SDS (method sds or reward-sds), not of {self.method!r}")
        if not (math.isfinite(self.recon_std_rescale) and 0.0 <= self.recon_std_rescale <= 1.0):
            raise ValueError(f"recon_std_rescale must be in [0, 1], got {self.recon_std_rescale}")
        if not all(math.isfinite(v) and v > 0 for v in (self.cfg, self.preview_cfg)):
            raise ValueError(f"guidance scales must be finite numbers > 0, got cfg={self.cfg}, "
                             f"preview_cfg={self.preview_cfg}")
        if self.n_noises > 4096 or self.denoise_steps > 1000:
            raise ValueError(f"n_noises (N) must be <= 4096 and denoise_steps (S) <= 1000, got {self.n_noises}, "
                             f"{self.denoise_steps}")
        if not (math.isfinite(self.vsd_lr) and self.vsd_lr > 0) or not (
                isinstance(self.vsd_lora_rank, int) and 0 <= self.vsd_lora_rank <= 256):
            raise ValueError(f"vsd_lr must be finite and > 0 and vsd_lora_rank an integer in [0, 256], got "
                             f"{self.vsd_lr}, {self.vsd_lora_rank}")
        if self.time_weighting not in ("sds", "constant"):
            raise ValueError(f"time_weighting must be 'sds' or 'constant', got {self.time_weighting!r}")
        if not (math.isfinite(self.bridge_switch) and 0.0 <= self.bridge_switch <= 1.0):
            raise ValueError(f"bridge_switch must be in [0, 1], got {self.bridge_switch}")

    @property
    def base(self) -> str:
        return self.method.removeprefix("reward-")

    @property
    def uses_reward(self) -> bool:
        return self.method.startswith("reward-")


@dataclass
class GuidanceOutput:
    loss: torch.Tensor  # surrogate; its gradient w.r.t. x0 is grad / B
    grad: torch.Tensor  # [B, C, H, W]
    t: int
    rewards: torch.Tensor | None  # [B, N] candidate rewards on reward steps
    weights: torch.Tensor | None  # [B, N]
    prior_calls: int
    finite: bool
    previews: torch.Tensor | None = None  # [B*N,3,H,W] in [0,1]: the scored candidates (`candidate_rows` order)


def sds_residual(cands: Candidates, scale: float) -> torch.Tensor:
    """DreamFusion: eps_hat(x_t, y) - eps."""
    return cands.pred.guided(scale) - cands.eps


def recon_residual(x0: torch.Tensor, cands: Candidates, scale: float, alpha_bar: torch.Tensor, std_rescale: float,
                   n: int, shared: bool) -> torch.Tensor:
    """x0-reconstruction SDS (threestudio's MVDream guidance, `recon_loss`; the official RewardSDS 3D
    code): x0 - x0_target, where x0_target is the x0 predicted from the CFG epsilon, blended
    (std_rescale) with itself rescaled to the std of the conditional prediction's x0. The std is taken
    per object, as threestudio does over its n_view views: the V views of candidate i when `shared`
    (entries [:, i] of `by_image`), else each image alone. The surrogate 0.5 ||x0 - sg(x0 - r)||^2 / B then has
    threestudio's loss 0.5 ||x0 - x0_target||^2 (sum) / B. With std_rescale = 0 this is
    sqrt((1 - a) / a) (eps_hat - eps), i.e. SDS with weight sqrt((1 - a) / a) instead of 1 - a."""
    rows, v = cands.x_t.shape[0], cands.views
    b = rows // n
    a = alpha_bar.expand(rows)
    target = x0_from_eps(cands.x_t, cands.pred.guided(scale), a)
    if std_rescale > 0:
        cond = x0_from_eps(cands.x_t, cands.pred.cond, a)
        tv, cv = by_image(target, b, n, v).reshape(b, n, -1), by_image(cond, b, n, v).reshape(b, n, -1)
        dims = (0, 2) if shared else (2,)
        factor = (cv.std(dim=dims, keepdim=True) + 1e-8) / (tv.std(dim=dims, keepdim=True) + 1e-8)
        target = to_rows(std_rescale * factor * tv + (1 - std_rescale) * tv, v).view_as(target)
    source = candidate_rows(b, n, v).to(x0.device)
    return x0.detach()[source].to(target.dtype) - target


def bridge_residual(cands: Candidates, scale: float) -> torch.Tensor:
    """SDS-Bridge stage 2: s (eps(x_t, y + tgt) - eps(x_t, y + src)) (cond / uncond halves hold them)."""
    return scale * (cands.pred.cond - cands.pred.uncond)


def vsd_residual(cands: Candidates, scale: float, eps_phi: torch.Tensor) -> torch.Tensor:
    """ProlificDreamer: eps_hat(x_t, y) - eps_phi(x_t, y)."""
    return cands.pred.guided(scale) - eps_phi


def dds_residual(cands: Candidates, source: EpsPrediction, scale: float) -> torch.Tensor:
    """DDS: eps_hat(z_t, y_tgt) - eps_hat(zsrc_t, y_src), both noised with the same t and eps."""
    return cands.pred.guided(scale) - source.guided(scale)


def surrogate(x0: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """0.5 ||x0 - sg(x0 - grad)||^2 / B: d/dx0 = grad / B."""
    target = (x0 - grad).detach()
    return 0.5 * (x0 - target).pow(2).sum() / x0.shape[0]


class Guidance:
    """Callable: (x0, prompts, t, use_reward, generator, shared, second_stage, cameras) -> GuidanceOutput.

    What changes between methods is only the residual r_i (module docstring), one function each;
    candidates, previews, rewards and weights are shared. Which step is a reward step or a bridge
    stage-2 step is the loop's schedule's decision, passed in as booleans. A multi-view prior
    (`prior.views_per_sample` V > 1) orders the candidate rows per set of views (`candidates.candidate_rows`)
    and reads the rows' cameras; its residuals are those of SDS and Bridge (VSD's particle model and DDS's
    edit are single-view)."""

    def __init__(self, cfg: GuidanceConfig, prior: DiffusionPrior, reward: Reward | None = None,
                 source: torch.Tensor | None = None, source_prompts: list[str] | None = None,
                 particle=None, preview_decoder=None) -> None:
        if cfg.uses_reward and reward is None:
            raise ValueError(f"method {cfg.method!r} needs a reward model")
        if cfg.base == "dds" and (source is None or source_prompts is None):
            raise ValueError("DDS editing needs the source image (model space) and the source prompt")
        if prior.views_per_sample > 1 and cfg.base in ("vsd", "dds"):
            raise ValueError(f"method {cfg.method!r} needs a single-view prior; a multi-view prior takes sds or bridge "
                             "(with or without reward-)")
        self.cfg, self.prior, self.reward = cfg, prior, reward
        self.source = source.detach() if source is not None else None
        self.source_prompts = source_prompts
        self.particle = particle  # VSD's epsilon_phi (vsd.ParticleScore)
        # what turns previews into images for the reward: the prior's decoder, or a cheaper stand-in
        self.decode_preview = preview_decoder if preview_decoder is not None else prior.decode

    def __call__(self, x0: torch.Tensor, prompts: list[str], t: int, use_reward: bool | None = None,
                 generator: torch.Generator | None = None, shared: bool = False,
                 second_stage: bool = False, cameras: torch.Tensor | None = None,
                 reward_prompts: list[str] | None = None) -> GuidanceOutput:
        """`shared`: the rows of x0 are views of one object (candidate i is one set of independent
        per-view noises, its reward the mean over the views, its weight shared by the views).
        `second_stage`: SDS-Bridge's stage 2 (ignored otherwise). `cameras`: c2w [B,4,4] of the rows,
        conditioning a multi-view prior (which needs them; a single-view prior ignores them).
        `reward_prompts`: the reward's text per row when it is not the prior's (None: `prompts`)."""
        c, prior = self.cfg, self.prior
        views = prior.views_per_sample
        if views > 1 and cameras is None:
            raise ValueError(f"the multi-view prior ({views} views per sample) needs the cameras of the views: "
                             "it distils 3D (gen3d), not an image")
        use_reward = c.uses_reward if use_reward is None else (use_reward and c.uses_reward)
        n = c.n_noises if use_reward else 1
        b = x0.shape[0]
        bridge2 = c.base == "bridge" and second_stage
        if bridge2:  # cond = prompt + tgt extra, "uncond" = prompt + src extra
            tgt = prior.embed([p + c.bridge_tgt for p in prompts])
            src = prior.embed([p + c.bridge_src for p in prompts])
            emb = TextEmbedding(tgt.cond, src.cond)
        else:
            emb = prior.embed(prompts, c.negative_prompt)
        if cameras is not None:
            emb = emb.with_cameras(cameras)
        src_pred = None
        if c.base == "dds":
            cands, src_pred = self._dds_candidates(x0, emb, t, n, generator)
        else:
            cands = noise_candidates(prior, x0, emb, t, n, generator)  # independent noise per row (per view)
        calls = cands.prior_calls
        emb_n = candidate_conditioning(emb, n, views)
        a = prior.alphas_cumprod[t].to(cands.x_t.dtype)
        recon = c.x0_recon and c.base == "sds"
        match c.base:
            case "sds" if recon:
                resid = recon_residual(x0, cands, c.cfg, a, c.recon_std_rescale, n, shared)
            case "sds":
                resid = sds_residual(cands, c.cfg)
            case "bridge":
                resid = bridge_residual(cands, c.cfg) if bridge2 else sds_residual(cands, c.cfg)
            case "vsd":
                resid = vsd_residual(cands, c.cfg, self.particle.predict(cands.x_t, t, emb_n))
            case "dds":
                resid = dds_residual(cands, src_pred, c.cfg)
            case other:
                raise ValueError(f"unknown method base {other!r}")

        rewards = weights = previews = None
        if use_reward:
            texts = prompts if reward_prompts is None else reward_prompts
            if len(texts) != b:
                raise ValueError(f"{len(texts)} reward prompts for {b} rows")
            rewards, weights, extra, previews = self._rank(cands, emb_n, texts, b, n, shared, generator)
            calls += extra
            wts = weights.to(resid.device, resid.dtype)
        else:
            wts = torch.ones(b, 1, device=resid.device, dtype=resid.dtype)
        resid = by_image(resid, b, n, views)
        constant = recon or c.time_weighting == "constant"  # x0 form: no w(t) (threestudio); DDS reference
        time_weight = 1.0 if constant else sds_weight(a.to(resid.dtype))
        grad = time_weight * (wts.view(b, n, *([1] * (resid.dim() - 2))) * resid).sum(1)
        finite = bool(torch.isfinite(grad).all())
        grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
        if self.particle is not None:
            self.particle.train_step(x0.detach(), emb, generator)
        return GuidanceOutput(surrogate(x0, grad), grad, t, rewards, weights, calls, finite, previews)

    def _rank(self, cands: Candidates, emb_n: TextEmbedding, prompts: list[str], b: int, n: int, shared: bool,
              generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]:
        """Preview, decode and score the candidates; (rewards [B,N], weights [B,N], extra prior calls,
        the decoded previews)."""
        c = self.cfg
        x0_hat, extra = preview(self.prior, cands, emb_n, c.denoise_steps, c.preview_cfg,
                                schedule=c.preview_schedule)
        with torch.no_grad():
            images = self.decode_preview(x0_hat)
        rows = candidate_rows(b, n, cands.views).tolist()
        try:
            rewards = by_image(self.reward(images, [prompts[j] for j in rows]), b, n, cands.views)
        except ValueError as e:  # the reward contract's message names the reward and what went wrong
            raise RewardError(str(e)) from e
        if shared:  # one candidate set for all views: a candidate's reward is its mean over the views
            weights = c.weighting(rewards.mean(0), generator).expand(b, n).clone()
        else:
            weights = torch.stack([c.weighting(r, generator) for r in rewards])
        return rewards, weights, extra, images

    def state_dict(self) -> dict:
        """What a checkpoint needs to continue exactly (VSD's particle model, optimiser, generator)."""
        return {"particle": self.particle.state_dict() if self.particle is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if self.particle is not None and state.get("particle") is not None:
            self.particle.load_state_dict(state["particle"])

    def _dds_candidates(self, z0: torch.Tensor, emb: TextEmbedding, t: int, n: int,
                        generator: torch.Generator | None) -> tuple[Candidates, EpsPrediction]:
        """Noise the edited image and the source with the SAME t and eps; one batched call."""
        b = z0.shape[0]
        src_emb = self.prior.embed(self.source_prompts, self.cfg.negative_prompt)
        both = torch.cat([z0.detach(), self.source.expand_as(z0)])
        joint = noise_candidates(self.prior, both, _cat(emb, src_emb), t, n, generator,
                                 shared_noise_groups=2)
        k = b * n
        cands = Candidates(t, joint.eps[:k], joint.x_t[:k], EpsPrediction(joint.pred.cond[:k],
                                                                          joint.pred.uncond[:k]))
        return cands, EpsPrediction(joint.pred.cond[k:], joint.pred.uncond[k:])


def _cat(a: TextEmbedding, b: TextEmbedding) -> TextEmbedding:
    return TextEmbedding(torch.cat([a.cond, b.cond]), torch.cat([a.uncond, b.uncond]))


def build_guidance(cfg: GuidanceConfig, prior: DiffusionPrior, reward: Reward | None = None,
                   source: torch.Tensor | None = None, source_prompts: list[str] | None = None,
                   generator_seed: int = 0, preview_decoder=None) -> Guidance:
    """The guidance for cfg.method; VSD methods get their particle score model here. `preview_decoder`
    (x0 -> images in [0, 1], e.g. `priors.preview_decoder.PreviewDecoder`) decodes the candidates for the
    reward instead of `prior.decode`."""
    particle = None
    if cfg.base == "vsd":
        from .vsd import ParticleScore

        particle = ParticleScore(prior, lr=cfg.vsd_lr, lora_rank=cfg.vsd_lora_rank, seed=generator_seed)
    return Guidance(cfg, prior, reward, source, source_prompts, particle, preview_decoder)
