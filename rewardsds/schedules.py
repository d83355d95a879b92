"""Schedules: which timestep each optimisation step uses, and which steps use rewards.

Timesteps are drawn uniformly from ``[t_min, t_max] * T`` (official 2D code: [21, 979] of 1000); for
text-to-3D the upper bound anneals linearly from t_max to `anneal_to` over `anneal_steps` (the
official 3D config: 0.98 -> 0.5 over 8000 steps), so late steps refine details.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TimestepSchedule:
    t_min: float = 0.02
    t_max: float = 0.98
    anneal_to: float | None = None
    """final upper bound (fraction of T) of a linear annealing; None keeps t_max"""
    anneal_steps: int = 0
    num_train_timesteps: int = 1000

    def __post_init__(self) -> None:
        if not (math.isfinite(self.t_min) and math.isfinite(self.t_max) and 0.0 <= self.t_min < self.t_max <= 1.0):
            raise ValueError(f"need 0 <= t_min < t_max <= 1, got t_min={self.t_min}, t_max={self.t_max}")
        a = self.anneal_to
        anneal_ok = a is None or (math.isfinite(a) and self.t_min < a <= self.t_max)
        if not anneal_ok:
            raise ValueError(f"anneal_to must lie in (t_min, t_max], got {self.anneal_to}")

    def bounds(self, step: int) -> tuple[int, int]:
        hi = self.t_max
        if self.anneal_to is not None and self.anneal_steps > 0:
            p = min(1.0, step / self.anneal_steps)
            hi = self.t_max + p * (self.anneal_to - self.t_max)
        T = self.num_train_timesteps
        lo_i, hi_i = int(self.t_min * T), min(int(hi * T), T - 1)
        return lo_i, max(hi_i, lo_i)

    def sample(self, step: int, generator: torch.Generator | None = None) -> int:
        lo, hi = self.bounds(step)
        return int(torch.randint(lo, hi + 1, (1,), generator=generator))


def reward_active(step: int, total_steps: int, reward_steps: float) -> bool:
    """Whether step uses rewards. reward_steps in (0, 1] is a fraction of the run (the first part),
    above 1 an absolute count of first steps (paper: K); 0 never."""
    if reward_steps <= 0:
        return False
    k = reward_steps * total_steps if reward_steps <= 1 else reward_steps
    return step < k


def bridge_stage2(step: int, total_steps: int, switch: float) -> bool:
    """SDS-Bridge: whether `step` is in stage 2 (source -> target prompts), which starts after the
    fraction `switch` of the run (official: half)."""
    return step >= switch * total_steps


def sds_weight(alpha_bar: torch.Tensor) -> torch.Tensor:
    """DreamFusion's w(t) = 1 - alpha_bar_t."""
    return 1.0 - alpha_bar
