"""What the world's trainers share: the world they train on, the common options, checkpoints, resume,
schedules, records.

The trainers name no world themselves: what they read (`WorldSpec`: data, tokenizer, hard negatives,
family name, default folders) comes from their config class's ``world``, the 2D world (`WORLD`) unless
a subclass says otherwise (``rewardsds.world3d.train`` sets the 3D one), so one trainer serves both.

Checkpoints go through `rewardsds.checkpoints` (safetensors + JSON, never pickle), written atomically
every few hundred steps to ``<work>/checkpoint.safetensors``, so a killed run resumes from the last one
and never reads a half-written file. A pickle ``checkpoint.pt`` left by an older version is refused
(`CheckpointError`), not loaded and not silently skipped.
"""

from __future__ import annotations

import inspect
import json
import math
import platform
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ...checkpoints import CHECKPOINT_NAME, CheckpointError, load_state, save_state
from ...media import save_text as atomic_write_text
from .. import paths, tokenizer
from ..metrics import PIXEL_MEAN, PIXEL_STD, hard_negative_accuracy, to_pixel_values
from ..negatives import INVERSE_RELATION, hard_negatives, swapped
from ..scenes import render, sample_batch

__all__ = ["CHECKPOINT", "WORLD", "TrainConfig", "WorldSpec", "atomic_write_text", "batches", "image_processor",
           "load_checkpoint", "out_of_time", "save_checkpoint", "seed_for_step", "setup", "to_pixel_values",
           "warmup_cosine", "write_record"]

CHECKPOINT = CHECKPOINT_NAME  # checkpoint.safetensors, as in a generate/gen3d run folder
_LEGACY_CHECKPOINT = "checkpoint.pt"

Batch = tuple[np.ndarray, list[str], list[Any]]
"""(images [B,3,H,W] float32 in [0,1], captions, scenes): what a world's `sample_batch` returns"""


@dataclass(frozen=True)
class WorldSpec:
    """Everything the CLIP and prior trainers need to know about the world they train on.

    A typed object passed around (no registry of names): a new world is a new instance of this.
    """

    family: str
    """`model_index.json`'s `_class_name` of the trained prior (how loaders tell the families apart)"""
    module: str
    """the trainers' package, for the commands written into the training records"""
    clip_data: Callable[[int, int, int], Batch]
    """(seed, batch, image_size) -> a batch for the CLIP (captions as the reward will read them)"""
    prior_data: Callable[[int, int, int], Batch]
    """(seed, batch, image_size) -> a batch for the prior (captions as it will be prompted)"""
    build_tokenizer: Callable[[], Any]
    """a fresh tokenizer over the world's vocabulary (saved with the CLIP, reused by the prior)"""
    max_length: int
    """tokens per caption, BOS and EOS included (the text tower's positions)"""
    hard_negatives: Callable[[Any, random.Random, int, float], list[str]]
    """(scene, rng, k, relation_focus) -> k captions false of the scene"""
    clip_accuracy: Callable[..., float]
    """(model, tok, split=, image_size=) -> hard-negative accuracy on fresh renders (the CLIP's final check)"""
    clip_dir: Callable[[], Path]
    prior_dir: Callable[[], Path]
    swap_pairs: Callable[[np.ndarray, list[str], list[Any], float, random.Random, int], None] | None = None
    """(images, captions, scenes, fraction, rng, image_size): replace, in place, the tail of a batch by
    position-swapped twins; None where the world has none (then --swap-pairs must stay 0)"""
    caption_suffix: Callable[[str], str] | None = None
    """caption -> the tail its hard negatives share with it (the 3D world's view suffix, so that a negative
    differs from the caption in a fact, never in the view); None: negatives end as they are drawn"""


def _swap_pairs_2d(images: np.ndarray, captions: list[str], scenes: list, fraction: float,
                   rng: random.Random, image_size: int) -> None:
    """Replace the tail of the batch by position-swapped twins of relational scenes, so that the
    batch holds both images of a pair and each is the other's hardest negative."""
    batch = len(scenes)
    rel = [i for i, sc in enumerate(scenes) if sc.relation in INVERSE_RELATION]
    k = min(len(rel), int(fraction * batch))
    for j, i in enumerate(rel[:k]):
        dst = batch - 1 - j
        if dst <= i:
            break
        twin = swapped(scenes[i])
        scenes[dst] = twin
        captions[dst] = twin.caption(rng)
        images[dst] = render(twin, image_size).transpose(2, 0, 1)


WORLD = WorldSpec(family=paths.WORLD_FAMILY, module="rewardsds.world.train", clip_data=sample_batch,
                  prior_data=sample_batch, build_tokenizer=tokenizer.build_tokenizer,
                  max_length=tokenizer.MAX_LENGTH, hard_negatives=hard_negatives,
                  clip_accuracy=hard_negative_accuracy, clip_dir=paths.clip_dir, prior_dir=paths.prior_dir,
                  swap_pairs=_swap_pairs_2d)
"""The 2D world: flat shapes, one caption grammar for CLIP and prior."""


@dataclass
class TrainConfig:
    """Options every world trainer has; each trainer's config sets its own defaults.

    ``world`` (a class attribute, not an option) is the world the trainer reads; a subclass for
    another world overrides it together with the default folders."""

    world: ClassVar[WorldSpec] = WORLD

    out: Path
    """the trained model is written here"""
    work: Path
    """checkpoints live here (resumed automatically)"""
    steps: int = 1000
    """length of the run (the learning-rate schedule spans it)"""
    batch: int = 64
    lr: float = 1e-3
    seed: int = 0
    image_size: int = 32
    checkpoint_every: int = 250
    max_minutes: float = 0.0
    """stop (and export) after this many minutes of this run; 0 = run all steps"""
    threads: int = 0
    """torch threads (0: torch's default). Use 1 when other jobs share the cores: OpenMP threads that
    wait for a starved sibling slow a step down tenfold."""
    device: str = "cpu"
    """where the model trains: cpu, cuda, cuda:N or mps (data are always made on the CPU)"""
    workers: int = 0
    """processes that render the next batches while the model trains (0: render in this process). Worth
    it on a GPU, where rendering would otherwise be the step; batches stay those of (seed, step)."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        if self.image_size < 4 or self.image_size % 4:
            raise ValueError(f"image_size must be a positive multiple of 4, got {self.image_size}")
        if not (math.isfinite(self.max_minutes) and self.max_minutes >= 0):
            raise ValueError(f"max_minutes must be >= 0 (0 = no limit), got {self.max_minutes}")
        if self.seed < 0 or self.threads < 0 or self.workers < 0:
            raise ValueError(f"seed, threads and workers must be >= 0, got seed {self.seed}, threads "
                             f"{self.threads}, workers {self.workers}")
        try:
            torch.device(self.device)
        except RuntimeError as e:
            raise ValueError(f"device must be cpu, cuda, cuda:N or mps, got {self.device!r}") from e

    @property
    def checkpoint(self) -> Path:
        return Path(self.work) / CHECKPOINT


def object_mix(two_objects: float | None, data: Callable, family: str) -> dict:
    """Keyword arguments that ask a world's data function (`WorldSpec.clip_data` / `prior_data`) for a share
    of two-object scenes: {} for the world's own mix (None). A share outside [0, 1], or a world whose data
    has no such knob, raises ValueError (a trainer's option check)."""
    if two_objects is None:
        return {}
    if not (math.isfinite(two_objects) and 0 <= two_objects <= 1):
        raise ValueError(f"two_objects must be in [0, 1], got {two_objects}")
    if "two_objects" not in inspect.signature(data).parameters:
        raise ValueError(f"--two-objects: the {family} world's data has no object-count mix")
    return {"two_objects": two_objects}


def setup(cfg: TrainConfig) -> None:
    """Thread count and the global seed (model initialisation); call first in every trainer."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)


class _StepData(torch.utils.data.Dataset):
    """Step k's batch, fn(k), for k in [start, stop): a map-style dataset so that a `DataLoader`'s workers
    make batches ahead of use and hand them back in step order."""

    def __init__(self, fn: Callable[[int], Any], start: int, stop: int):
        self.fn, self.start, self.stop = fn, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int):
        return self.fn(self.start + i)


def batches(fn: Callable[[int], Any], start: int, stop: int, workers: int = 0):
    """Yield fn(step) for step in [start, stop), in order; with `workers` > 0, made by that many worker
    processes ahead of use (`fn` must pickle: a module-level function or a partial of one)."""
    if workers == 0:
        yield from (fn(step) for step in range(start, stop))
        return
    loader = torch.utils.data.DataLoader(_StepData(fn, start, stop), batch_size=None, shuffle=False,
                                         num_workers=workers, prefetch_factor=4)
    yield from loader


def out_of_time(cfg: TrainConfig, t0: float) -> bool:
    return bool(cfg.max_minutes) and time.time() - t0 > cfg.max_minutes * 60


def load_checkpoint(path: Path, model, optimizer, scheduler=None) -> tuple[int, dict]:
    """Restore a run: (the step to continue from, the checkpoint's extra entries), or (0, {}) when
    there is no checkpoint. A legacy pickle ``checkpoint.pt`` beside `path` raises `CheckpointError`."""
    path = Path(path)
    if not path.exists():
        legacy = path.with_name(_LEGACY_CHECKPOINT)
        if not legacy.exists():
            return 0, {}
        path = legacy
    try:
        state, _ = load_state(path)
    except CheckpointError as e:
        raise CheckpointError(f"{e} (the world trainers resume from --work by themselves: delete "
                              f"{str(path)!r} or pass another --work to train from step 0)") from e
    model.load_state_dict(state.pop("model"))
    optimizer.load_state_dict(state.pop("optimizer"))
    sched_state = state.pop("scheduler", None)
    if scheduler is not None and sched_state is not None:
        scheduler.load_state_dict(sched_state)
    return int(state.pop("step")), state


def save_checkpoint(path: Path, model, optimizer, step: int, scheduler=None, **extra) -> None:
    """Model, optimiser and scheduler state, the step, and any `extra` tensors/state dicts (e.g. EMA)."""
    save_state(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                      "scheduler": scheduler.state_dict() if scheduler is not None else None, **extra})


def write_record(path: Path, cfg: TrainConfig, command: str, **fields) -> None:
    """The training record committed beside the weights: what was trained, how, and how it ended."""
    record = {"written": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.machine(),
              "torch": torch.__version__, "threads": torch.get_num_threads(), "command": command,
              "config": {k: str(v) for k, v in vars(cfg).items()}, **fields}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def image_processor(image_size: int):
    """The `CLIPImageProcessor` saved beside a world vision tower (it does what `to_pixel_values` does)."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
                              image_mean=[PIXEL_MEAN] * 3, image_std=[PIXEL_STD] * 3)


def warmup_cosine(optimizer, warmup: int, total: int):
    """Linear warm-up then cosine decay to 10% of the base learning rate."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        p = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)


def seed_for_step(base_seed: int, step: int) -> int:
    """Data for step k depends only on (seed, k): resuming replays exactly the same batches."""
    return base_seed * 1_000_003 + step
