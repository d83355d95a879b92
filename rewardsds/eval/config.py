"""`rewardsds eval`'s typed config (tyro builds the CLI from it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tyro


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
    force: bool = False
    """rescore runs that already have a score for a metric"""
    bootstrap: int = 2000
    """bootstrap replicates of the confidence intervals"""
    ci_seed: int = 0
    """seed of the bootstrap resampling (fixed, so the same scores always give the same CIs)"""
    batch_size: int = 32
