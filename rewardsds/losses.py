"""Score-distillation gradients, optionally reward-weighted (RewardSDS, paper Eq. 4-5).

Every method computes, for one shared timestep t and N noises eps_i, a per-noise residual r_i and
the gradient on x0 (the image in the prior's model space):

    grad = w(t) * sum_i w_i r_i,        w(t) = 1 - alpha_bar_t,

with w_i from the rewards of the candidates' previews (weighting.py) on reward steps, and a single
noise (w_1 = 1) on plain steps. The residuals:

| method  | r_i                                                                  |
|---------|----------------------------------------------------------------------|
| sds     | eps_hat(x_t^i, y) - eps_i                       (DreamFusion)        |
| vsd     | eps_hat(x_t^i, y) - eps_phi(x_t^i, y)           (ProlificDreamer)    |
| bridge  | stage 1: SDS; stage 2: s (eps(x_t^i, y+tgt) - eps(x_t^i, y+src))     |
| dds     | eps_hat(z_t^i, y_tgt) - eps_hat(zsrc_t^i, y_src) (same t and eps_i)  |

The gradient enters autograd through the stop-gradient surrogate ``0.5 ||x0 - sg(x0 - grad)||^2 / B``
so any optimiser applies; non-finite gradients are reported (the loop skips such steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch

from .candidates import Candidates, noise_candidates, preview
from .errors import RewardError
from .priors.base import DiffusionPrior, EpsPrediction, TextEmbedding
from .rewards.base import Reward
from .schedules import sds_weight
from .weighting import Weighting

Method = Literal["sds", "reward-sds", "vsd", "reward-vsd", "bridge", "reward-bridge", "dds", "reward-dds"]
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
    weighting: Weighting = field(default_factory=Weighting)
    negative_prompt: str = ""
    bridge_switch: float = 0.5
    """bridge: fraction of the steps after which stage 2 (src->tgt) starts"""
    bridge_src: str = BRIDGE_SRC
    bridge_tgt: str = BRIDGE_TGT
    vsd_lr: float = 3e-4
    vsd_lora_rank: int = 0
    """VSD particle model: 0 = a trainable copy of the prior's network; > 0 = LoRA of that rank (peft)"""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; expected one of {', '.join(METHODS)}")
        if self.n_noises < 1:
            raise ValueError(f"n_noises (N) must be >= 1, got {self.n_noises}")
        if self.denoise_steps < 1:
            raise ValueError(f"denoise_steps (S) must be >= 1, got {self.denoise_steps}")
        if not all(math.isfinite(v) and v > 0 for v in (self.cfg, self.preview_cfg)):
            raise ValueError(f"guidance scales must be finite numbers > 0, got cfg={self.cfg}, "
                             f"preview_cfg={self.preview_cfg}")
        if self.n_noises > 4096 or self.denoise_steps > 1000:
            raise ValueError(f"n_noises (N) must be <= 4096 and denoise_steps (S) <= 1000, got {self.n_noises}, "
                             f"{self.denoise_steps}")
        if not (math.isfinite(self.vsd_lr) and self.vsd_lr > 0) or self.vsd_lora_rank < 0:
            raise ValueError(f"vsd_lr must be finite and > 0 and vsd_lora_rank >= 0, got {self.vsd_lr}, "
                             f"{self.vsd_lora_rank}")
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


def sds_residual(cands: Candidates, scale: float) -> torch.Tensor:
    """DreamFusion: eps_hat(x_t, y) - eps."""
    return cands.pred.guided(scale) - cands.eps


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
    """Callable: (x0, prompts, t, use_reward, generator, shared, second_stage) -> GuidanceOutput.

    What changes between methods is only the residual r_i (module docstring), one function each;
    candidates, previews, rewards and weights are shared. Which step is a reward step or a bridge
    stage-2 step is the loop's schedule's decision, passed in as booleans."""

    def __init__(self, cfg: GuidanceConfig, prior: DiffusionPrior, reward: Reward | None = None,
                 source: torch.Tensor | None = None, source_prompts: list[str] | None = None,
                 particle=None) -> None:
        if cfg.uses_reward and reward is None:
            raise ValueError(f"method {cfg.method!r} needs a reward model")
        if cfg.base == "dds" and (source is None or source_prompts is None):
            raise ValueError("DDS editing needs the source image (model space) and the source prompt")
        self.cfg, self.prior, self.reward = cfg, prior, reward
        self.source = source.detach() if source is not None else None
        self.source_prompts = source_prompts
        self.particle = particle  # VSD's epsilon_phi (vsd.ParticleScore)

    def __call__(self, x0: torch.Tensor, prompts: list[str], t: int, use_reward: bool | None = None,
                 generator: torch.Generator | None = None, shared: bool = False,
                 second_stage: bool = False) -> GuidanceOutput:
        """`shared`: the rows of x0 are views of one object (candidate i is one set of noises, its
        reward the mean over the views). `second_stage`: SDS-Bridge's stage 2 (ignored otherwise)."""
        c, prior = self.cfg, self.prior
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
        src_pred = None
        if c.base == "dds":
            cands, src_pred = self._dds_candidates(x0, emb, t, n, generator)
        else:
            cands = noise_candidates(prior, x0, emb, t, n, generator, same_noise_for_batch=shared)
        calls = cands.prior_calls
        emb_n = emb.repeat(n)
        match c.base:
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

        rewards = weights = None
        if use_reward:
            rewards, weights, extra = self._rank(cands, emb_n, prompts, b, n, shared, generator)
            calls += extra
            wts = weights.to(resid.device, resid.dtype)
        else:
            wts = torch.ones(b, 1, device=resid.device, dtype=resid.dtype)
        a = prior.alphas_cumprod[t].to(resid.dtype)
        resid = resid.view(b, n, *resid.shape[1:])
        grad = sds_weight(a) * (wts.view(b, n, *([1] * (resid.dim() - 2))) * resid).sum(1)
        finite = bool(torch.isfinite(grad).all())
        grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
        if self.particle is not None:
            self.particle.train_step(x0.detach(), emb, generator)
        return GuidanceOutput(surrogate(x0, grad), grad, t, rewards, weights, calls, finite)

    def _rank(self, cands: Candidates, emb_n: TextEmbedding, prompts: list[str], b: int, n: int, shared: bool,
              generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Preview, decode and score the candidates; (rewards [B,N], weights [B,N], extra prior calls)."""
        c = self.cfg
        x0_hat, extra = preview(self.prior, cands, emb_n, c.denoise_steps, c.preview_cfg)
        with torch.no_grad():
            images = self.prior.decode(x0_hat)
        try:
            rewards = self.reward(images, [p for p in prompts for _ in range(n)]).view(b, n)
        except ValueError as e:  # the reward contract's message names the reward and what went wrong
            raise RewardError(str(e)) from e
        if shared:  # one candidate set for all views: a candidate's reward is its mean over the views
            weights = c.weighting(rewards.mean(0), generator).expand(b, n).clone()
        else:
            weights = torch.stack([c.weighting(r, generator) for r in rewards])
        return rewards, weights, extra

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
                   generator_seed: int = 0) -> Guidance:
    """The guidance for cfg.method; VSD methods get their particle score model here."""
    particle = None
    if cfg.base == "vsd":
        from .vsd import ParticleScore

        particle = ParticleScore(prior, lr=cfg.vsd_lr, lora_rank=cfg.vsd_lora_rank, seed=generator_seed)
    return Guidance(cfg, prior, reward, source, source_prompts, particle)
