"""`rewardsds world-eval`: the embedded world's quality figures, from the shipped weights.

1. prior: DDIM samples (<= 50 steps, CFG) of fresh captions, graded by the exact judge - single
   objects, two objects with a spatial relation, held-out colour-shape pairs - and background
   cleanliness (std of background pixels, and their mean distance to the true background colour)
   next to the renderer's own images of the same captions;
2. CLIP reward: true caption above all its hard negatives, on fresh renders (train pairs / held-out);
3. aesthetic reward: clean render above its degraded copy.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .judge import judge, label_pixels
from .scenes import BACKGROUND, Scene, render, sample_scene


@dataclass
class WorldEvalConfig:
    """Print the embedded world's quality figures (prior, CLIP reward, aesthetic reward)."""

    n: int = 200
    """captions per prior category (single, relation); held-out uses n // 2"""
    steps: int = 50
    cfg: float = 4.0
    seed: int = 0
    batch: int = 50
    parts: tuple[str, ...] = ("prior", "clip", "aesthetic")
    out: Path | None = None
    """also write the figures as JSON here"""
    samples_png: Path | None = None
    """save a grid of the first prior samples here"""


def _captions(n: int, kind: str, seed: int) -> list[tuple[Scene, str]]:
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        if kind == "single":
            sc = sample_scene(rng, 1, "train")
        elif kind == "relation":
            sc = sample_scene(rng, 2, "train")
            if sc.relation == "and":
                continue
        else:
            sc = sample_scene(rng, 1, "heldout")
        out.append((sc, sc.caption(rng)))
    return out


def background_stats(img: np.ndarray) -> tuple[float, float]:
    """(std of background pixels, mean |pixel - true background|) for an HxWx3 image."""
    labels, _ = label_pixels(img)
    bg = img[labels == -1]
    if bg.size == 0:
        return float("nan"), float("nan")
    return float(bg.std(0).mean()), float(np.abs(bg - np.array(BACKGROUND)).mean())


def eval_prior(cfg: WorldEvalConfig, prior) -> dict:
    from ..sampling import sample

    g = torch.Generator().manual_seed(cfg.seed)
    figures, first = {}, None
    for kind, n in (("single", cfg.n), ("relation", cfg.n), ("heldout", cfg.n // 2)):
        items = _captions(n, kind, cfg.seed + {"single": 0, "relation": 1, "heldout": 2}[kind])
        accs, exact, bg_gen, bg_ref = [], [], [], []
        for i in range(0, n, cfg.batch):
            chunk = items[i:i + cfg.batch]
            images = sample(prior, [c for _, c in chunk], steps=cfg.steps, cfg=cfg.cfg, generator=g)
            if first is None:
                first = images[:24]
            for img, (sc, cap) in zip(images.permute(0, 2, 3, 1).numpy(), chunk):
                v = judge(img, cap)
                accs.append(v.accuracy)
                exact.append(v.all_correct)
                bg_gen.append(background_stats(img))
                bg_ref.append(background_stats(render(sc, img.shape[0])))
        figures[kind] = {"n": n, "judge_accuracy": float(np.mean(accs)), "all_facts_correct": float(np.mean(exact)),
                         "background_std": float(np.nanmean([b[0] for b in bg_gen])),
                         "background_error": float(np.nanmean([b[1] for b in bg_gen])),
                         "renderer_background_std": float(np.nanmean([b[0] for b in bg_ref])),
                         "renderer_background_error": float(np.nanmean([b[1] for b in bg_ref]))}
    if cfg.samples_png is not None and first is not None:
        from .. import media

        media.save_png(cfg.samples_png, media.grid(media.to_uint8(first, 4), cols=8))
    return figures


def eval_clip() -> dict:
    from transformers import AutoTokenizer, CLIPModel

    from .paths import clip_dir
    from .train_clip import hard_negative_accuracy

    model = CLIPModel.from_pretrained(clip_dir()).eval()
    tok = AutoTokenizer.from_pretrained(clip_dir())
    return {s: hard_negative_accuracy(model, tok, n=300, split=s) for s in ("train", "heldout")}


def eval_aesthetic() -> dict:
    from ..rewards.factory import load_reward
    from .train_aesthetic import ranking_accuracy

    reward = load_reward("world-aesthetic")
    return ranking_accuracy(lambda x: reward(x, [""] * x.shape[0]))


def run_world_eval(cfg: WorldEvalConfig) -> dict:
    from ..priors.diffusers_prior import DiffusersPrior
    from .paths import prior_dir

    t0 = time.time()
    results: dict = {"config": {k: str(v) for k, v in vars(cfg).items()}}
    if "prior" in cfg.parts:
        prior = DiffusersPrior.from_pretrained(prior_dir())
        results["prior"] = eval_prior(cfg, prior)
        for kind, f in results["prior"].items():
            print(f"prior {kind:9s} judge accuracy {f['judge_accuracy']:.3f}  all facts {f['all_facts_correct']:.3f}"
                  f"  background std {f['background_std']:.4f} (renderer {f['renderer_background_std']:.4f})"
                  f"  background error {f['background_error']:.4f} (renderer {f['renderer_background_error']:.4f})")
    if "clip" in cfg.parts:
        results["clip"] = eval_clip()
        print(f"clip hard-negative accuracy: train pairs {results['clip']['train']:.3f}, "
              f"held-out pairs {results['clip']['heldout']:.3f}")
    if "aesthetic" in cfg.parts:
        results["aesthetic"] = eval_aesthetic()
        print("aesthetic ranking accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in results["aesthetic"].items()))
    results["seconds"] = round(time.time() - t0, 1)
    if cfg.out is not None:
        from .. import media

        media.save_json(cfg.out, results)
    print(json.dumps({k: v for k, v in results.items() if k != "config"}, indent=1))
    return results
