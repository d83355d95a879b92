"""The reward interface: ``(images [B,3,H,W] in [0,1], prompts: list[str]) -> Tensor[B]``, no grad.

Adapters for real models live beside this file and are imported lazily; any user callable with
that signature is a reward too (`CallableReward`), and rewards combine linearly (`MixReward`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


class Reward:
    """Base class: subclasses implement `score`; calling checks shapes and disables grad."""

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
        out = torch.as_tensor(self.score(images.float().clamp(0, 1), prompts)).float().flatten()
        if out.shape[0] != images.shape[0]:
            raise ValueError(f"reward {self.name!r} returned {out.shape[0]} scores for {images.shape[0]} images")
        return out.cpu()


class CallableReward(Reward):
    """Wrap any ``f(images, prompts) -> scores``."""

    def __init__(self, fn: Callable[[torch.Tensor, list[str]], torch.Tensor], name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "callable")

    def score(self, images, prompts):
        return self.fn(images, prompts)


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
