"""Typed configs for the 2D commands (the CLI is generated from these by tyro) and named presets.

Defaults target the embedded world on CPU. Fields left at None take the prior's own default
(`prior_defaults`): the world's small pixel-space prior wants a different guidance scale and
learning rate than Stable Diffusion's latent space.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from .loop import LoopConfig
from .losses import BRIDGE_SRC, BRIDGE_TGT, GuidanceConfig, Method
from .weighting import Scheme, Weighting

PRIOR_ALIASES = {
    "sd21": "stabilityai/stable-diffusion-2-1-base",
    "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",
}


@dataclass
class DistillOptions:
    """The distillation options shared by single runs and sweeps."""

    prior: str = "world"
    """'world' (embedded, offline), 'sd21', 'sd15', a local diffusers folder or a hub id"""
    reward: str = "world-clip"
    """world-clip, world-aesthetic, clip, aesthetic@HEAD, imagereward, pickscore, hpsv2, a mix such as
    '0.5*world-clip+0.5*world-aesthetic', or module.path:function"""
    n_noises: int = 4
    """N: noise candidates per reward step"""
    denoise_steps: int = 1
    """S: DDIM steps of each candidate's preview (1 = exact one-step x0 prediction)"""
    reward_steps: float = 1.0
    """K: steps that use rewards: a fraction (0, 1] of the first steps, or a count > 1"""
    weighting: Scheme = "top-bottom"
    softmax_temperature: float = 1.0
    softmax_normalize: Literal["none", "zscore", "rank"] = "none"
    steps: int | None = None
    """optimisation steps (default: the prior's)"""
    cfg: float | None = None
    """guidance scale of the distillation gradient (default: the prior's, per method)"""
    preview_cfg: float = 7.5
    lr: float | None = None
    device: str = "auto"
    """auto (cuda when available), cpu, cuda, cuda:1 ..."""
    negative_prompt: str = ""
    t_min: float = 0.02
    t_max: float = 0.98


@dataclass
class CommonConfig(DistillOptions):
    method: Method = "reward-sds"
    seed: int = 0
    checkpoint_every: int = 100
    resume: bool = False
    """continue from out/checkpoint.pt if it exists"""
    progress: bool = True


@dataclass
class GenerateConfig(CommonConfig):
    """Text-to-image: distil an image of PROMPT from the prior."""

    prompt: tyro.conf.Positional[str] = ""
    out: Path = Path("out/generate")
    init: Literal["noise", "colour", "image"] = "colour"
    init_image: Path | None = None
    batch: int = 1
    """images optimised side by side (each with its own noises)"""


@dataclass
class EditConfig(CommonConfig):
    """2D editing: change IMAGE from --source to --target (DDS / RewardDDS by default)."""

    image: tyro.conf.Positional[Path] = Path()
    source: str = ""
    """prompt describing the input image"""
    target: str = ""
    """prompt describing the wanted edit"""
    method: Method = "reward-dds"
    out: Path = Path("out/edit")
    n_noises: int = 5


WORLD_FAMILY = "RewardSDSWorldPrior"  # model_index.json's _class_name (world.train_prior writes it)


def is_world_prior(prior: str) -> bool:
    """'world', or a folder holding a world prior (e.g. one retrained with world.train_prior): it wants
    the world's defaults, not Stable Diffusion's. Reads model_index.json only; loads nothing."""
    if prior == "world":
        return True
    import json

    try:
        index = json.loads((Path(prior).expanduser() / "model_index.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(index, dict) and index.get("_class_name") == WORLD_FAMILY


def prior_defaults(prior: str, method: str) -> dict:
    """Steps, lr and guidance scale for a prior family and method (paper values for SD)."""
    base = method.removeprefix("reward-")
    if is_world_prior(prior):
        cfg = {"sds": 20.0, "vsd": 7.5, "bridge": 20.0, "dds": 7.5}[base]
        return {"steps": 300, "lr": 0.02, "cfg": cfg}
    cfg = {"sds": 100.0, "vsd": 7.5, "bridge": 40.0, "dds": 7.5}[base]
    return {"steps": 1000 if base != "dds" else 200, "lr": 0.01 if base != "dds" else 0.1, "cfg": cfg}


def resolve(cfg: CommonConfig) -> CommonConfig:
    """Fill the None fields from the prior's defaults (the resolved config is what gets saved)."""
    d = prior_defaults(cfg.prior, cfg.method)
    return dataclasses.replace(cfg, **{k: v for k, v in d.items() if getattr(cfg, k) is None})


def guidance_config(cfg: CommonConfig) -> GuidanceConfig:
    return GuidanceConfig(
        method=cfg.method, cfg=cfg.cfg, preview_cfg=cfg.preview_cfg, n_noises=cfg.n_noises,
        denoise_steps=cfg.denoise_steps, negative_prompt=cfg.negative_prompt,
        weighting=Weighting(cfg.weighting, temperature=cfg.softmax_temperature,
                            normalize=cfg.softmax_normalize),
        bridge_src=BRIDGE_SRC, bridge_tgt=BRIDGE_TGT)


def loop_config(cfg: CommonConfig) -> LoopConfig:
    return LoopConfig(steps=cfg.steps, lr=cfg.lr, reward_steps=cfg.reward_steps, t_min=cfg.t_min,
                      t_max=cfg.t_max, checkpoint_every=cfg.checkpoint_every,
                      frame_every=max(1, cfg.steps // 60))


# Named presets: plain Python, applied as the defaults that command-line flags then override.
PRESETS: dict[str, dict] = {
    "paper-full": {"n_noises": 10, "denoise_steps": 15, "reward_steps": 1.0},
    "paper-small": {"n_noises": 2, "denoise_steps": 1, "reward_steps": 0.1},
    "sds": {"method": "sds"},
    "fast": {"n_noises": 2, "denoise_steps": 1, "steps": 100},
}
