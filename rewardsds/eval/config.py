"""`rewardsds eval`'s typed config (tyro builds the CLI from it) and its checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from ..sweep.checks import check_int, check_seed

# Replicates are drawn at once ([B, n] indices): more than this costs memory and changes no digit shown.
MAX_BOOTSTRAP = 100_000


@dataclass
class EvalConfig:
    """Score every finished run of SWEEP_DIR with each metric, store the scores in its sweep.db, and
    print per-method means with 95% bootstrap CIs and paired differences against the baseline."""

    sweep_dir: tyro.conf.Positional[Path] = Path()
    """a folder written by `rewardsds sweep`"""
    metrics: str = "judge,world-clip,world-aesthetic"
    """comma-separated: judge (world prompts), world-clip, world-aesthetic, clip, aesthetic@HEAD,
    imagereward, pickscore, hpsv2, or any reward spec (module:function, 0.5*a+0.5*b)"""
    baseline: str = "sds"
    """method (or full variant label, e.g. 'reward-sds [n_noises=8]') the paired differences compare against"""
    device: str = "auto"
    """where the metric models run: auto (cuda when available), cpu, cuda, cuda:1 ..."""
    force: bool = False
    """rescore runs that already have a score for a metric"""
    bootstrap: int = 2000
    """bootstrap replicates of the confidence intervals"""
    ci_seed: int = 0
    """seed of the bootstrap resampling (fixed, so the same scores always give the same CIs)"""
    batch_size: int = 32
    """images scored per metric call"""
    threads: int | Literal["auto"] | None = None
    """CPU threads for torch: N, or auto (default: the cores idle at start; waiting threads sleep)"""


def check_eval(cfg: EvalConfig) -> None:
    """Every option that can be checked without reading the sweep: ``ValueError`` naming the option."""
    if not [m for m in cfg.metrics.split(",") if m.strip()]:
        raise ValueError("--metrics is empty; e.g. --metrics judge,world-clip,world-aesthetic")
    check_int("bootstrap", cfg.bootstrap, 1, MAX_BOOTSTRAP)
    check_seed("ci_seed", cfg.ci_seed)
    check_int("batch_size", cfg.batch_size, 1)
    if not cfg.device.strip():
        raise ValueError("--device is empty; give auto, cpu, cuda or cuda:N")
