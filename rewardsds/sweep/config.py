"""`rewardsds sweep`'s typed config (tyro builds the CLI from it), its checks, and its mapping onto
GenerateConfig."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import tyro

from ..config import DistillOptions, SampleInit
from ..losses import EDIT_METHODS, TEXT_METHODS, Method
from .checks import check_float, check_int, check_seed

# SweepConfig fields copied verbatim into every run's GenerateConfig.
FORWARDED = tuple(f.name for f in fields(DistillOptions)) + tuple(f.name for f in fields(SampleInit)) + ("batch",)
RewardMethod = Literal["reward-sds", "reward-vsd", "reward-bridge"]


@dataclass
class SweepConfig(DistillOptions, SampleInit):
    """Run every (prompt, method, seed) of PROMPTS_FILE in parallel into OUT; resumable: a rerun skips
    finished runs and retries the rest. Runs live in OUT/runs/<config hash>/, bookkeeping in OUT/sweep.db."""

    prompts_file: tyro.conf.Positional[Path] = Path()
    """text file, one prompt per line; '#' starts a comment"""
    methods: tuple[Method, ...] = ("sds", "reward-sds")
    seeds: tuple[int, ...] = (0,)
    out: Path = Path("out/sweep")
    """sweep folder: runs/<config hash>/ per run and the sweep.db store"""
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
    """show a progress bar"""
    threads: int | Literal["auto"] | None = None
    """CPU threads of the driver (each worker runs one run on 1 thread; --workers sets how many run at once)"""
    equal_time_of: RewardMethod | None = None
    """also run the equal-time control of this reward-* method: its plain method (sds for reward-sds)
    with --steps scaled by the ratio of their seconds per image, measured on this sweep's runs of both
    (so both must be in --methods) once they are all done, and kept in sweep.db for reruns"""
    equal_time_ratio: float | None = None
    """with --equal-time-of: this time ratio instead of the measured one (control steps = round(steps x
    ratio)); eval still reports the ratio achieved"""


def check_sweep(cfg: SweepConfig) -> None:
    """The sweep's own options (the forwarded DistillOptions are checked with each run's config),
    diffusers-style: ``ValueError`` naming the option and the bad value, before anything is read."""
    if not cfg.methods:
        raise ValueError("--methods is empty")
    for m in cfg.methods:
        if m not in TEXT_METHODS:
            what = "edits an image" if m in EDIT_METHODS else "is not a method"
            raise ValueError(f"method {m!r} {what}; a sweep runs text-to-image (use {', '.join(TEXT_METHODS)})")
    if not cfg.seeds:
        raise ValueError("--seeds is empty")
    for seed in cfg.seeds:
        check_seed("seeds", seed)
    if cfg.equal_time_of is not None:
        plain = cfg.equal_time_of.removeprefix("reward-")
        if cfg.equal_time_of not in cfg.methods or plain not in cfg.methods:
            raise ValueError(f"--equal-time-of {cfg.equal_time_of} measures the time of {plain} and "
                             f"{cfg.equal_time_of}: give both, e.g. --methods {plain} {cfg.equal_time_of}")
    if cfg.equal_time_ratio is not None:
        if cfg.equal_time_of is None:
            raise ValueError("--equal-time-ratio needs --equal-time-of METHOD (the method whose time it matches)")
        check_float("equal_time_ratio", cfg.equal_time_ratio, 0.0, lo_open=True)
    check_int("batch", cfg.batch, 1)
    check_int("workers", cfg.workers, 0)
    check_int("retries", cfg.retries, 0)
    check_float("ray_gpus", cfg.ray_gpus, 0.0)
    check_float("lease_s", cfg.lease_s, 0.0)
    from .runner import HEARTBEAT_S

    if cfg.lease_s <= HEARTBEAT_S:  # a live driver renews every HEARTBEAT_S / 2 s; its lease must outlast that
        raise ValueError(f"--lease-s must be longer than the driver's heartbeat ({HEARTBEAT_S:g} s), or a second "
                         f"sweep could take over runs that are still running; got {cfg.lease_s:g}")
    if cfg.ray is not None and not cfg.ray.strip():
        raise ValueError("--ray is empty; give 'local', 'auto' or 'ray://host:10001'")
