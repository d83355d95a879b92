"""`rewardsds report`'s typed config (tyro builds the CLI from it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro


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
    ci_seed: int = 0
    title: str | None = None
