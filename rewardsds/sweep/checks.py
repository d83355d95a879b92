"""Range checks for the numeric options of `rewardsds sweep`, `eval` and `report`, shared so that every
command words the same mistake the same way. They raise ``ValueError`` naming the option as it is
spelled on the command line; the commands turn that into `UserError` (one line, exit 2)."""

from __future__ import annotations

import math
from numbers import Integral, Real

# Seeds are stored as SQLite INTEGERs (signed 64 bit) and fed to numpy / torch generators.
SEED_LIMIT = 2**63


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_int(name: str, value: object, lo: int, hi: int | None = None) -> None:
    """``lo <= value <= hi`` for an integer option (bools are not integers here)."""
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise ValueError(f"{flag(name)} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{flag(name)} must be {bound}, got {value}")


def check_float(name: str, value: object, lo: float, hi: float | None = None, lo_open: bool = False,
                hi_open: bool = False) -> None:
    """A finite number in the interval [lo, hi] (open ends with ``lo_open`` / ``hi_open``)."""
    if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{flag(name)} must be a finite number, got {value!r}")
    bad = value <= lo if lo_open else value < lo
    bad = bad or (hi is not None and (value >= hi if hi_open else value > hi))
    if bad:
        left = f"{'(' if lo_open else '['}{lo:g}"
        right = f"{hi:g}{')' if hi_open else ']'}" if hi is not None else "inf)"
        raise ValueError(f"{flag(name)} must be in {left}, {right}, got {value:g}")


def check_seed(name: str, value: object) -> None:
    check_int(name, value, 0, SEED_LIMIT - 1)
