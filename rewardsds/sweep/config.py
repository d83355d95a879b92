"""`rewardsds sweep`'s typed config (tyro builds the CLI from it) and its mapping onto GenerateConfig."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from ..losses import Method
from ..weighting import Scheme

# SweepConfig fields copied verbatim into every run's GenerateConfig.
FORWARDED = ("prior", "reward", "n_noises", "denoise_steps", "reward_steps", "weighting", "softmax_temperature",
             "softmax_normalize", "preview_cfg", "steps", "cfg", "lr", "device", "batch")


@dataclass
class SweepConfig:
    """Run every (prompt, method, seed) of PROMPTS_FILE in parallel into OUT; resumable: a rerun skips
    finished runs and retries the rest. Runs live in OUT/runs/<config hash>/, bookkeeping in OUT/sweep.db."""

    prompts_file: tyro.conf.Positional[Path] = Path()
    """text file, one prompt per line; '#' starts a comment"""
    methods: tuple[Method, ...] = ("sds", "reward-sds")
    seeds: tuple[int, ...] = (0,)
    out: Path = Path("out/sweep")
    prior: str = "world"
    """'world' (embedded), 'sd21', 'sd15', a local diffusers folder or a hub id"""
    reward: str = "world-clip"
    """the reward of the reward-* methods (any --reward spec of `rewardsds generate`)"""
    n_noises: int = 4
    """N: noise candidates per reward step"""
    denoise_steps: int = 1
    """S: DDIM steps of each candidate's preview"""
    reward_steps: float = 1.0
    """K: steps that use rewards: a fraction (0, 1] of the first steps, or a count > 1"""
    weighting: Scheme = "top-bottom"
    softmax_temperature: float = 1.0
    softmax_normalize: Literal["none", "zscore", "rank"] = "none"
    preview_cfg: float = 7.5
    steps: int | None = None
    """optimisation steps (default: the prior's)"""
    cfg: float | None = None
    """guidance scale (default: the prior's, per method)"""
    lr: float | None = None
    batch: int = 1
    """images per run"""
    device: str = "auto"
    workers: int = 0
    """parallel runs; 0 = min(CPU cores, runs) locally, or the cluster's CPUs with --ray"""
    ray: str | None = None
    """run on Ray instead of local processes: 'auto' / 'ray://host:10001' (existing cluster) or 'local'"""
    ray_gpus: float = 0.0
    """GPUs per Ray task (Ray hides GPUs from tasks that ask for none); 0.25 packs four runs per GPU"""
    retries: int = 1
    """extra attempts of a run that fails or whose worker dies, before it is recorded as failed"""
    lease_s: float = 1800.0
    """a 'running' row whose driver stopped renewing it for this long is taken over by another sweep"""
    progress: bool = True
