"""Shared plumbing for the world's training scripts: checkpoints, resume, records, image noise.

Checkpoints are written atomically (temp file + rename) every few hundred steps, so a killed run
resumes from the last one and never reads a half-written file.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

from ..media import atomic_torch_save  # noqa: F401 (used by the scripts)
from ..media import save_text as atomic_write_text


def load_checkpoint(path: Path, model, optimizer, scheduler=None) -> int:
    """Restore a run; returns the step to continue from (0 when there is no checkpoint)."""
    path = Path(path)
    if not path.exists():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    return int(state["step"])


def save_checkpoint(path: Path, model, optimizer, step: int, scheduler=None, **extra) -> None:
    atomic_torch_save(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
         "scheduler": scheduler.state_dict() if scheduler is not None else None, **extra},
        path,
    )


def write_record(path: Path, **fields) -> None:
    """The training record committed beside the weights: what was trained, how, and how it ended."""
    record = {"written": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.machine(),
              "torch": torch.__version__, "threads": torch.get_num_threads(), **fields}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def warmup_cosine(optimizer, warmup: int, total: int):
    """Linear warm-up then cosine decay to 10% of the base learning rate."""
    import math

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        p = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)


def seed_for_step(base_seed: int, step: int) -> int:
    """Data for step k depends only on (seed, k): resuming replays exactly the same batches."""
    return base_seed * 1_000_003 + step
