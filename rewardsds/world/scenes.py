"""The embedded world's procedural scenes: 1-2 flat shapes on a light background, with captions.

Everything here is deterministic given a seed, depends only on numpy, and is the single source of
truth for the world's vocabulary: the tokenizer, the judge and the training scripts import it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from . import grammar

# RGB in [0, 1]. Chosen to be far apart along lines from the background so that the judge can
# unmix anti-aliased edge pixels (see judge.py).
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.12),
    "green": (0.13, 0.65, 0.22),
    "blue": (0.15, 0.30, 0.88),
    "yellow": (0.96, 0.84, 0.10),
    "purple": (0.56, 0.20, 0.72),
    "orange": (0.98, 0.52, 0.05),
}
BACKGROUND: tuple[float, float, float] = (0.94, 0.94, 0.92)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
# Object side length as a fraction of the canvas; the judge splits small/big at SIZE_SPLIT.
SIZE_RANGES: dict[str, tuple[float, float]] = {"small": (0.22, 0.27), "big": (0.38, 0.43)}
SIZE_SPLIT = 0.325
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below", "and")
# Colour-shape pairs never shown in training data: compositional generalisation is measured on them.
HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    {("purple", "triangle"), ("orange", "circle"), ("green", "diamond")}
)

_SINGLE_TEMPLATES = ("{o}", "a photo of {o}", "a drawing of {o}", "there is {o}")
_RELATION_WORDS = {
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
    "and": ("and", "with"),
}
# Extra words the grammar can emit; the tokenizer's vocabulary is built from all of these.
FILLER_WORDS = ("a", "photo", "of", "drawing", "there", "is", "to", "the", "on", "left", "right")


@dataclass(frozen=True)
class Obj:
    """One shape: centre (cx, cy) and side length in canvas fractions; y grows downwards."""

    colour: str
    shape: str
    size: str
    cx: float = 0.5
    cy: float = 0.5
    side: float = 0.4


@dataclass(frozen=True)
class Scene(grammar.CaptionedScene):
    """1-2 objects; for two, ``objects[0] <relation> objects[1]``; `caption()` in this world's wordings."""

    objects: tuple[Obj, ...]
    single_templates = _SINGLE_TEMPLATES
    relation_words = _RELATION_WORDS


def vocabulary() -> list[str]:
    """Every word the grammar can produce (sorted, deterministic)."""
    return grammar.vocabulary(set(FILLER_WORDS) | set(COLOURS) | set(SHAPES) | set(SIZE_RANGES), _SINGLE_TEMPLATES,
                              _RELATION_WORDS)


def _allowed_pairs(split: str) -> list[tuple[str, str]]:
    return grammar.allowed_pairs(split, COLOURS, SHAPES, HELD_OUT)


def sample_scene(rng: random.Random, n_objects: int | None = None, split: str = "train") -> Scene:
    """Draw a random scene. split='heldout' makes the first object a held-out colour-shape pair."""
    pairs = _allowed_pairs(split)
    train_pairs = _allowed_pairs("train") if split == "heldout" else pairs
    n = n_objects if n_objects is not None else rng.choice((1, 2))
    sizes = [rng.choice(tuple(SIZE_RANGES)) for _ in range(n)]
    sides = [rng.uniform(*SIZE_RANGES[s]) for s in sizes]
    mention = tuple(rng.random() < 0.5 for _ in range(n))
    if n == 1:
        c, s = rng.choice(pairs)
        j = 0.12
        obj = Obj(c, s, sizes[0], 0.5 + rng.uniform(-j, j), 0.5 + rng.uniform(-j, j), sides[0])
        return Scene((obj,), None, mention)
    (c0, s0) = rng.choice(pairs)
    while True:  # the two objects must differ, so that the caption identifies each one
        (c1, s1) = rng.choice(train_pairs)
        if (c1, s1) != (c0, s0):
            break
    relation = rng.choice(RELATIONS)
    axis_rel = relation if relation != "and" else rng.choice(("left of", "right of", "above", "below"))
    # first object's position along the relation axis, second mirrors it; jitter across the axis.
    near, far = 0.25 + rng.uniform(-0.03, 0.03), 0.75 + rng.uniform(-0.03, 0.03)
    a0, a1 = (near, far) if axis_rel in ("left of", "above") else (far, near)
    o0, o1 = 0.5 + rng.uniform(-0.1, 0.1), 0.5 + rng.uniform(-0.1, 0.1)
    if axis_rel in ("left of", "right of"):
        p0, p1 = (a0, o0), (a1, o1)
    else:
        p0, p1 = (o0, a0), (o1, a1)
    objs = (Obj(c0, s0, sizes[0], *p0, sides[0]), Obj(c1, s1, sizes[1], *p1, sides[1]))
    return Scene(objs, relation, mention)


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test in local coordinates u, v in [-1, 1] (v down). Shared by renderer and judge."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return (np.abs(u) <= 0.9) & (np.abs(v) <= 0.9)  # 0.9: visually the same size as a circle
    if shape == "triangle":
        return (v <= 1.0) & (np.abs(u) <= (v + 1.0) / 2.0)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def render(scene: Scene, size: int = 32, supersample: int = 4) -> np.ndarray:
    """Render to float32 HxWx3 in [0, 1], anti-aliased by box-filtering a supersampled canvas."""
    n = size * supersample
    coords = (np.arange(n, dtype=np.float32) + 0.5) / n
    x, y = np.meshgrid(coords, coords)
    img = np.empty((n, n, 3), dtype=np.float32)
    img[:] = BACKGROUND
    for o in scene.objects:
        half = o.side / 2.0
        img[shape_mask(o.shape, (x - o.cx) / half, (y - o.cy) / half)] = COLOURS[o.colour]
    return img.reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))


def sample_batch(
    seed: int, batch: int, size: int = 32, split: str = "train", two_objects: float | None = None
) -> tuple[np.ndarray, list[str], list[Scene]]:
    """A deterministic batch: images (B,3,H,W) float32 in [0,1], random-wording captions, scenes.
    ``two_objects``: the share of two-object scenes (None: half, drawn as `sample_scene` draws them)."""
    rng = random.Random(seed)
    scenes = grammar.draw_scenes(sample_scene, rng, batch, split, two_objects)
    captions = [sc.caption(rng) for sc in scenes]
    images = np.stack([render(sc, size).transpose(2, 0, 1) for sc in scenes])
    return images, captions, scenes
