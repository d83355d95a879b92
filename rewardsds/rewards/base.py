"""The reward interface: ``(images [B,3,H,W] in [0,1], prompts: list[str]) -> Tensor[B]``, no grad.

Adapters for real models live beside this file and are imported lazily; any user callable with
that signature is a reward too (`CallableReward`), and rewards combine linearly (`MixReward`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

_INTEGER = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


class Reward:
    """Base class: subclasses implement `score`; calling checks the inputs and the scores (`check_scores`:
    shape [B], finite) and disables grad."""

    name: str = "reward"

    def score(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        prompts = list(prompts)
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"a reward takes images [B,3,H,W]; got shape {tuple(images.shape)}")
        if len(prompts) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {len(prompts)} prompts")
        return check_scores(self.score(images.float().clamp(0, 1), prompts), images.shape[0], self.name)


def _kind(obj) -> str:
    name = type(obj).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def check_scores(out, n: int, name: str) -> torch.Tensor:
    """``out`` as float32 scores [n] on the CPU, or a ValueError naming reward ``name`` and what is wrong.

    Accepted: a torch tensor or numpy array of shape [n] (or [n, 1]) of real numbers, or a list/tuple
    of n numbers. Every score must be finite: a NaN or infinite reward would silently decide the
    candidates' ranks and weights, so it is an error rather than a value mapped to the bottom rank."""
    expected = f"expected a tensor of {n} score{'s' if n != 1 else ''}"
    if isinstance(out, torch.Tensor):
        t = out.detach()
    elif isinstance(out, np.ndarray):
        if out.dtype.kind not in "biuf":  # bool, int, unsigned, float (not complex, str, object)
            raise ValueError(f"reward {name!r} returned a numpy array of {out.dtype}, {expected}")
        t = torch.as_tensor(np.asarray(out, dtype=np.float32))
    elif isinstance(out, (list, tuple)):
        try:
            t = torch.as_tensor(out)
        except (TypeError, ValueError, RuntimeError):
            t = None
        if t is None or not (t.is_floating_point() or t.dtype in _INTEGER):
            raise ValueError(f"reward {name!r} returned {_kind(out)} that is not a list of numbers, "
                             f"{expected}")
    else:
        raise ValueError(f"reward {name!r} returned {_kind(out)}, {expected}")
    if t.is_complex():
        raise ValueError(f"reward {name!r} returned complex scores, {expected}")
    if t.dim() == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if tuple(t.shape) != (n,):
        raise ValueError(f"reward {name!r} returned scores of shape {tuple(t.shape)}, {expected} (shape [{n}])")
    t = t.float().cpu()
    bad = int((~torch.isfinite(t)).sum())
    if bad:
        raise ValueError(f"reward {name!r} returned non-finite scores (NaN or inf) for {bad} of {n} candidates")
    return t


class CallableReward(Reward):
    """Wrap any ``f(images, prompts) -> scores``."""

    def __init__(self, fn: Callable[[torch.Tensor, list[str]], torch.Tensor], name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "callable")

    def score(self, images, prompts):
        try:
            return self.fn(images, prompts)
        except TypeError as e:  # almost always a callable that does not take (images, prompts)
            raise ValueError(f"reward {self.name!r} failed when called as f(images, prompts): "
                             f"TypeError: {e}") from e


class MixReward(Reward):
    """A weighted sum of rewards: ``sum_k w_k R_k``. Rank-based weightings ignore the scale anyway;
    for softmax weighting, z-normalise or set the temperature accordingly."""

    def __init__(self, rewards: Sequence[Reward], weights: Sequence[float]):
        if len(rewards) != len(weights) or not rewards:
            raise ValueError("MixReward needs as many weights as rewards (at least one)")
        self.rewards, self.weights = list(rewards), [float(w) for w in weights]
        self.name = "+".join(f"{w:g}*{r.name}" for r, w in zip(self.rewards, self.weights))

    def score(self, images, prompts):
        return sum(w * r(images, prompts) for r, w in zip(self.rewards, self.weights))
