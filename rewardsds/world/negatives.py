"""Hard-negative captions: minimal edits of a scene that make its caption false.

Used to train the world CLIP (so it binds colour to shape and reads relations) and to measure
it (`world.metrics.hard_negative_accuracy`): a good reward picks the true caption over each of these.
"""

from __future__ import annotations

import random
from dataclasses import replace

from .grammar import caption_holds
from .scenes import COLOURS, SHAPES, Scene

INVERSE_RELATION: dict[str, str] = {"left of": "right of", "right of": "left of", "above": "below",
                                     "below": "above"}
"""Each spatial relation and the one that holds when its two objects swap places ("and" has none)."""


def _edits(scene: Scene, rng: random.Random) -> list[Scene]:
    objs = list(scene.objects)
    mention = list(scene.mention_size) or [False] * len(objs)
    out = []
    for i, o in enumerate(objs):
        others = [c for c in COLOURS if c != o.colour]
        out.append(replace(scene, objects=tuple(
            replace(x, colour=rng.choice(others)) if j == i else x for j, x in enumerate(objs))))
        shapes = [s for s in SHAPES if s != o.shape]
        out.append(replace(scene, objects=tuple(
            replace(x, shape=rng.choice(shapes)) if j == i else x for j, x in enumerate(objs))))
        flipped = "small" if o.size == "big" else "big"
        m = list(mention)
        m[i] = True
        out.append(replace(scene, mention_size=tuple(m), objects=tuple(
            replace(x, size=flipped) if j == i else x for j, x in enumerate(objs))))
    if len(objs) == 2:
        a, b = objs
        if a.colour != b.colour:
            out.append(replace(scene, objects=(replace(a, colour=b.colour), replace(b, colour=a.colour))))
        if a.shape != b.shape:
            out.append(replace(scene, objects=(replace(a, shape=b.shape), replace(b, shape=a.shape))))
        if scene.relation in INVERSE_RELATION:
            out.append(replace(scene, relation=INVERSE_RELATION[scene.relation]))
    # an edit that is still true of the scene (swapping equal colours; "A and B" -> "B and A"; a size
    # swap between two objects of one size) is not a negative
    return [s for s in out if not holds(s, scene)]


def swapped(scene: Scene) -> Scene:
    """The same two objects with their positions exchanged, captioned with the inverse relation."""
    a, b = scene.objects
    return replace(scene, objects=(replace(a, cx=b.cx, cy=b.cy), replace(b, cx=a.cx, cy=a.cy)),
                   relation=INVERSE_RELATION[scene.relation])


def holds(stated: Scene, actual: Scene) -> bool:
    """Whether the caption of `stated` is true of `actual`: some one-to-one matching of the stated
    objects to the actual ones agrees on colour, shape and (where stated) size, and the actual
    positions satisfy the stated relation."""
    return caption_holds(stated, actual, _relation)


def _relation(rel: str | None, a, b) -> bool:
    return {"left of": a.cx < b.cx, "right of": a.cx > b.cx, "above": a.cy < b.cy,
            "below": a.cy > b.cy}.get(rel, True)


def hard_negatives(scene: Scene, rng: random.Random, k: int, relation_focus: float = 0.0) -> list[str]:
    """k captions (random wording) that are false for the scene; repeats if fewer edits exist.

    relation_focus: probability that the inverted relation (the hardest edit: one word, and the
    image must be read for positions) is always among the k. 0 leaves the draw uniform.
    """
    edits = _edits(scene, rng)
    rng.shuffle(edits)
    if relation_focus > 0 and scene.relation in INVERSE_RELATION and rng.random() < relation_focus:
        inverse = [e for e in edits if e.relation != scene.relation]
        edits = inverse + [e for e in edits if e.relation == scene.relation]
    return [edits[i % len(edits)].caption(rng) for i in range(k)]


def all_hard_negatives(scene: Scene) -> list[str]:
    """Every edit of the scene, in canonical wording (for evaluation)."""
    return [s.caption() for s in _edits(scene, random.Random(0))]
