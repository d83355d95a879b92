"""`rewardsds world-eval`: the embedded world's quality figures, from the shipped weights.

The prior part can grade another prior folder of the same layout (``--prior``, e.g. a retrained one);
the CLIP and aesthetic parts always use the shipped weights.

1. prior: DDIM samples (<= 50 steps, CFG) of fresh captions, graded by the exact judge - single
   objects, two objects with a spatial relation, held-out colour-shape pairs - and background
   cleanliness (std of background pixels, and their mean distance to the true background colour)
   next to the renderer's own images of the same captions;
2. CLIP reward: true caption above all its hard negatives, on fresh renders (train pairs / held-out);
3. aesthetic reward: clean render above its degraded copy.

`check_inputs` validates the options before anything loads or is written (ValueError, one sentence);
`run_world_eval` reports those as `UserError`, which the CLI prints as one line (exit code 2).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .judge import judge, label_pixels
from .paths import prior_dir
from .scenes import BACKGROUND, Scene, render, sample_scene

PARTS: tuple[str, ...] = ("prior", "clip", "aesthetic")
MAX_STEPS = 1000  # the world prior's training timesteps: DDIM cannot take more steps than that


@dataclass
class WorldEvalConfig:
    """Print the embedded world's quality figures (prior, CLIP reward, aesthetic reward)."""

    n: int = 200
    """captions per prior category (single, relation); held-out uses n // 2 (so n >= 2)"""
    steps: int = 50
    """DDIM steps per prior sample (1 to 1000)"""
    cfg: float = 4.0
    """classifier-free guidance scale of the prior samples (finite, >= 0)"""
    seed: int = 0
    """seeds the captions and the samplers' noise"""
    batch: int = 50
    """prior samples per forward pass"""
    parts: tuple[str, ...] = PARTS
    """which figures to compute: any of prior, clip, aesthetic"""
    out: Path | None = None
    """also write the figures as JSON here"""
    samples_png: Path | None = None
    """save a grid of the first prior samples here"""
    prior: Path = field(default_factory=prior_dir)
    """the prior folder the prior part grades (model_index.json, unet/, ...; default: the shipped one)"""
    threads: int | Literal["auto"] | None = None
    """CPU threads for torch: N, or auto (default: the cores idle at start; waiting threads sleep)"""


def check_inputs(cfg: WorldEvalConfig) -> None:
    """Raise ValueError (one sentence naming the option) unless every option is usable."""
    if cfg.n < 2:
        raise ValueError(f"--n must be at least 2 (held-out captions are n // 2), got {cfg.n}")
    if not 1 <= cfg.steps <= MAX_STEPS:
        raise ValueError(f"--steps must be between 1 and {MAX_STEPS}, got {cfg.steps}")
    if not (math.isfinite(cfg.cfg) and cfg.cfg >= 0):
        raise ValueError(f"--cfg (the guidance scale) must be a finite number >= 0, got {cfg.cfg}")
    if not 0 <= cfg.seed < 2**32:
        raise ValueError(f"--seed must be in [0, 2**32), got {cfg.seed}")
    if cfg.batch < 1:
        raise ValueError(f"--batch must be at least 1, got {cfg.batch}")
    if not cfg.parts:
        raise ValueError(f"--parts is empty; name at least one of {', '.join(PARTS)}")
    unknown = [p for p in cfg.parts if p not in PARTS]
    if unknown:
        raise ValueError(f"--parts: unknown part {unknown[0]!r}; expected any of {', '.join(PARTS)}")
    for flag, path in (("--out", cfg.out), ("--samples-png", cfg.samples_png)):
        if path is not None:
            _check_output_file(flag, Path(path))
    _check_prior_folder(Path(cfg.prior))


def _check_prior_folder(path: Path) -> None:
    """--prior must be a diffusers prior folder. The shipped default is left to `_missing_weights`, whose
    message says how to get it back."""
    if path.resolve() == prior_dir().resolve():
        return
    if not path.is_dir():
        raise ValueError(f"--prior {str(path)!r} is not a folder; give a prior folder "
                         "(model_index.json, unet/, text_encoder/, tokenizer/, scheduler/)")
    missing = [n for n, ok in (("model_index.json", (path / "model_index.json").is_file()),
                               ("unet/", (path / "unet").is_dir())) if not ok]
    if missing:
        raise ValueError(f"--prior {str(path)!r} is not a prior folder: it has no {' and no '.join(missing)}")


def _check_output_file(flag: str, path: Path) -> None:
    if path.is_dir():
        raise ValueError(f"{flag} {str(path)!r} is a folder; give the name of a file to write")
    for parent in path.parents:  # the first existing ancestor must be a folder we can create the rest in
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{flag} {str(path)!r} cannot be written: {str(parent)!r} is a file, not a folder")
            break


def _missing_weights(parts: tuple[str, ...], prior: Path | None = None) -> str | None:
    from .paths import aesthetic_dir, clip_dir

    needed = {"prior": Path(prior or prior_dir()) / "model_index.json", "clip": clip_dir() / "config.json",
              "aesthetic": aesthetic_dir() / "head.safetensors"}
    for part in PARTS:
        if part in parts and not needed[part].is_file():
            return (f"the world's {part} weights are missing ({str(needed[part])!r} does not exist); reinstall "
                    "rewardsds or retrain them with scripts/train_world.sh")
    return None


def _finite_mean(values) -> float | None:
    """Mean of the finite values; None (JSON null, never NaN) when there are none."""
    finite = [float(v) for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "n/a" if value is None else format(value, spec)


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
        figures[kind] = {"n": n, "judge_accuracy": _finite_mean(accs), "all_facts_correct": _finite_mean(exact),
                         "background_std": _finite_mean([b[0] for b in bg_gen]),
                         "background_error": _finite_mean([b[1] for b in bg_gen]),
                         "renderer_background_std": _finite_mean([b[0] for b in bg_ref]),
                         "renderer_background_error": _finite_mean([b[1] for b in bg_ref])}
    if cfg.samples_png is not None and first is not None:
        from .. import media

        media.save_png(cfg.samples_png, media.grid(media.to_uint8(first, 4), cols=8))
    return figures


def eval_clip() -> dict:
    from transformers import AutoTokenizer, CLIPModel

    from .metrics import hard_negative_accuracy
    from .paths import clip_dir

    model = CLIPModel.from_pretrained(clip_dir()).eval()
    tok = AutoTokenizer.from_pretrained(clip_dir())
    return {s: hard_negative_accuracy(model, tok, n=300, split=s) for s in ("train", "heldout")}


def eval_aesthetic() -> dict:
    from ..rewards.factory import load_reward
    from .metrics import ranking_accuracy

    reward = load_reward("world-aesthetic")
    return ranking_accuracy(lambda x: reward(x, [""] * x.shape[0]))


def run_world_eval(cfg: WorldEvalConfig) -> dict:
    from ..errors import UserError

    try:
        check_inputs(cfg)
    except ValueError as e:
        raise UserError(str(e)) from e
    missing = _missing_weights(cfg.parts, cfg.prior)
    if missing:
        raise UserError(missing)
    t0 = time.time()
    results: dict = {"config": {k: str(v) for k, v in vars(cfg).items()}}
    if "prior" in cfg.parts:
        from ..priors.diffusers_prior import DiffusersPrior

        prior = DiffusersPrior.from_pretrained(str(cfg.prior))
        results["prior"] = eval_prior(cfg, prior)
        for kind, f in results["prior"].items():
            print(f"prior {kind:9s} judge accuracy {_fmt(f['judge_accuracy'], '.3f')}"
                  f"  all facts {_fmt(f['all_facts_correct'], '.3f')}"
                  f"  background std {_fmt(f['background_std'])} (renderer {_fmt(f['renderer_background_std'])})"
                  f"  background error {_fmt(f['background_error'])} (renderer {_fmt(f['renderer_background_error'])})")
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
