"""Schedules: which timestep each optimisation step uses, and which steps use rewards.

Timesteps are drawn uniformly from ``[lo, hi] * T``. 2D keeps one range for the whole run (official
2D code: [21, 979] of 1000). For text-to-3D both bounds may anneal linearly from the start range
``(t_min, t_max)`` to the end range ``(anneal_min_to, anneal_to)`` over `anneal_steps` steps and stay
there: the official 3D config (MVDream, used by the paper's 3D code) starts at [0.98, 0.98] and ends
at [0.02, 0.50] after 8000 of 10000 steps, so early steps shape the object at high noise and late
steps refine details. The integer bounds follow threestudio: ``int(fraction * T)``, t ~ U{lo..hi}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TimestepSchedule:
    t_min: float = 0.02
    """lower bound (fraction of T) at the start"""
    t_max: float = 0.98
    """upper bound (fraction of T) at the start"""
    anneal_to: float | None = None
    """final upper bound of a linear annealing; None keeps t_max"""
    anneal_steps: int = 0
    """steps over which the bounds anneal (0: no annealing)"""
    num_train_timesteps: int = 1000
    anneal_min_to: float | None = None
    """final lower bound of the annealing; None keeps t_min"""

    def __post_init__(self) -> None:
        lo0, hi0 = self.t_min, self.t_max
        if not (math.isfinite(lo0) and math.isfinite(hi0) and 0.0 <= lo0 <= 1.0 and 0.0 <= hi0 <= 1.0):
            raise ValueError(f"need 0 <= t_min < t_max <= 1, got t_min={self.t_min}, t_max={self.t_max}")
        lo1 = lo0 if self.anneal_min_to is None else self.anneal_min_to
        hi1 = hi0 if self.anneal_to is None else self.anneal_to
        a = self.anneal_to
        if a is not None and not (math.isfinite(a) and lo1 < a <= hi0):
            raise ValueError(f"anneal_to must lie in (the final lower bound {lo1}, t_max={hi0}], got {a}")
        m = self.anneal_min_to
        if m is not None and not (math.isfinite(m) and 0.0 <= m <= lo0 and m < hi1):
            raise ValueError(f"anneal_min_to must lie in [0, t_min={lo0}] and below the final upper bound {hi1}, "
                             f"got {m}")
        if lo0 > hi0:
            raise ValueError(f"need 0 <= t_min < t_max <= 1, got t_min={self.t_min}, t_max={self.t_max}")
        if self.anneal_steps < 0:
            raise ValueError(f"anneal_steps must be >= 0, got {self.anneal_steps}")
        if not self.anneals and lo0 >= hi0:  # a zero-width start range only makes sense if it widens
            raise ValueError(f"need 0 <= t_min < t_max <= 1 (or annealing bounds), got t_min={lo0}, t_max={hi0}")

    @property
    def anneals(self) -> bool:
        return self.anneal_steps > 0 and (self.anneal_to is not None or self.anneal_min_to is not None)

    def fractions(self, step: int) -> tuple[float, float]:
        """(lower, upper) bound at `step` as fractions of T."""
        lo, hi = self.t_min, self.t_max
        if self.anneals:
            p = min(1.0, max(0.0, step / self.anneal_steps))
            if self.anneal_min_to is not None:
                lo = self.t_min + p * (self.anneal_min_to - self.t_min)
            if self.anneal_to is not None:
                hi = self.t_max + p * (self.anneal_to - self.t_max)
        return lo, hi

    def bounds(self, step: int) -> tuple[int, int]:
        """Integer (lo, hi) of `step`; t is drawn from lo..hi inclusive."""
        lo, hi = self.fractions(step)
        T = self.num_train_timesteps
        lo_i = min(int(round(lo * T, 9)), T - 1)
        hi_i = min(int(round(hi * T, 9)), T - 1)
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
