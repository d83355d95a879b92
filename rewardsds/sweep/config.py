"""`rewardsds sweep`'s typed config (tyro builds the CLI from it) and its mapping onto GenerateConfig."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import tyro

from ..config import DistillOptions
from ..losses import Method

# SweepConfig fields copied verbatim into every run's GenerateConfig.
FORWARDED = tuple(f.name for f in fields(DistillOptions)) + ("batch",)


@dataclass
class SweepConfig(DistillOptions):
    """Run every (prompt, method, seed) of PROMPTS_FILE in parallel into OUT; resumable: a rerun skips
    finished runs and retries the rest. Runs live in OUT/runs/<config hash>/, bookkeeping in OUT/sweep.db."""

    prompts_file: tyro.conf.Positional[Path] = Path()
    """text file, one prompt per line; '#' starts a comment"""
    methods: tuple[Method, ...] = ("sds", "reward-sds")
    seeds: tuple[int, ...] = (0,)
    out: Path = Path("out/sweep")
    batch: int = 1
    """images per run"""
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
