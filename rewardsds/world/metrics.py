"""The accuracies of the world's two rewards, measured on fresh renders.

Both `rewardsds world-eval` and the trainers' final checks (`world.train.clip`, `world.train.aesthetic`)
report these, so they live here, in the runtime: the trainers import them, never the reverse.

- `hard_negative_accuracy`: how often the world CLIP scores a render's true caption above every one of
  its hard negatives (`world.negatives`);
- `ranking_accuracy`: how often a score puts a clean render above its degraded copy (`world.degrade`).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .. import _compat
from .degrade import KINDS, degrade
from .negatives import all_hard_negatives
from .scenes import render, sample_batch, sample_scene
from .tokenizer import MAX_LENGTH

PIXEL_MEAN = PIXEL_STD = 0.5
"""The world's image normalisation (the saved `CLIPImageProcessor`s hold the same mean and std)."""
CLIP_EVAL_SEED = 12345
AESTHETIC_EVAL_SEED = 987_654_321  # far from every training seed (seed * 1_000_003 + step)


def to_pixel_values(x: torch.Tensor) -> torch.Tensor:
    """Images in [0,1] -> the world CLIP towers' input (what the saved image processor does)."""
    return (x - PIXEL_MEAN) / PIXEL_STD


@torch.no_grad()
def hard_negative_accuracy(model, tok, n: int = 300, split: str = "train", seed: int = CLIP_EVAL_SEED,
                           image_size: int = 32) -> float:
    """How often the true caption outscores every one of its hard negatives, on fresh renders."""
    model.eval()
    rng = random.Random(seed)
    wins = 0
    for _ in range(n):
        sc = sample_scene(rng, split=split)
        texts = [sc.caption()] + all_hard_negatives(sc)
        enc = tok(texts, padding="max_length", max_length=MAX_LENGTH, return_tensors="pt")
        x = torch.from_numpy(render(sc, image_size).transpose(2, 0, 1)[None])
        img = F.normalize(_compat.features(model.get_image_features(pixel_values=to_pixel_values(x))), dim=-1)
        txt = F.normalize(_compat.features(model.get_text_features(**enc)), dim=-1)
        s = (img @ txt.T)[0]
        wins += int(s[0] > s[1:].max())
    return wins / n


@torch.no_grad()
def ranking_accuracy(score: Callable[[torch.Tensor], torch.Tensor], n: int = 1000, image_size: int = 32,
                     seed: int = AESTHETIC_EVAL_SEED, low: float = 0.2, high: float = 1.0,
                     chunk: int = 250) -> dict[str, float]:
    """Share of fresh pairs where ``score(clean) > score(degraded copy)``, per kind and overall.

    ``score`` maps images [B,3,H,W] in [0,1] to ratings [B]; n clean renders, each degraded once by
    every kind with its own severity ~ U[low, high]."""
    clean = torch.from_numpy(sample_batch(seed, n, image_size)[0])
    g = torch.Generator().manual_seed(seed)
    s_clean = torch.cat([score(clean[i:i + chunk]) for i in range(0, n, chunk)])
    acc, wins = {}, []
    for kind in KINDS:
        sev = low + (high - low) * torch.rand(n, generator=g)
        bad = degrade(clean, kind, sev, g)
        s_bad = torch.cat([score(bad[i:i + chunk]) for i in range(0, n, chunk)])
        won = (s_clean > s_bad).float()
        acc[kind], wins = float(won.mean()), wins + [won]
    acc["overall"] = float(torch.cat(wins).mean())
    return acc
