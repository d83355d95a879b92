"""`rewardsds report`'s typed config (tyro builds the CLI from it) and its checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from ..eval.config import MAX_BOOTSTRAP
from ..sweep.checks import check_int, check_seed

COSTS = ("seconds", "prior_calls")


@dataclass
class ReportConfig:
    """Write ONE self-contained HTML file about SWEEP_DIR (images inlined, inline SVG charts, no
    scripts): a table per metric (mean +- 95% CI, paired difference vs the baseline), cost per
    image, cost vs quality, reward / gradient curves over the steps, and a prompt x method gallery."""

    sweep_dir: tyro.conf.Positional[Path] = Path()
    """a folder written by `rewardsds sweep`"""
    out: Path | None = None
    """the HTML file (default: SWEEP_DIR/report.html)"""
    baseline: str = "sds"
    """method (or full variant label) of the paired differences"""
    metrics: str = ""
    """comma-separated metrics to show (default: every metric `rewardsds eval` stored)"""
    cost: Literal["seconds", "prior_calls"] = "seconds"
    """x axis of the cost vs quality charts: seconds per image (what you wait for, on the sweep's
    machine) or prior calls per image (machine-independent, but one call evaluates all N candidates,
    so it does not see N)"""
    gallery_prompts: int = 24
    """prompts (rows) in the gallery"""
    gallery_seed: int | None = None
    """seed shown in the gallery (default: the smallest)"""
    bootstrap: int = 2000
    """bootstrap resamples of the prompts for the 95% confidence intervals"""
    ci_seed: int = 0
    """seeds the bootstrap (the same seed gives the same intervals)"""
    title: str | None = None
    threads: int | Literal["auto"] | None = None
    """CPU threads for torch (bootstrap and image work): N, or auto (default: the cores idle at start)"""


def check_report(cfg: ReportConfig) -> None:
    """Every option that can be checked without reading the sweep: ``ValueError`` naming the option."""
    check_int("bootstrap", cfg.bootstrap, 1, MAX_BOOTSTRAP)
    check_seed("ci_seed", cfg.ci_seed)
    check_int("gallery_prompts", cfg.gallery_prompts, 0)
    if cfg.gallery_seed is not None:
        check_seed("gallery_seed", cfg.gallery_seed)
    if cfg.cost not in COSTS:
        raise ValueError(f"--cost must be one of {', '.join(COSTS)}, got {cfg.cost!r}")
    if cfg.out is not None and Path(cfg.out).is_dir():
        example = str(Path(cfg.out) / "report.html")
        raise ValueError(f"--out {str(cfg.out)!r} is a folder; give the HTML file, e.g. {example!r}")
