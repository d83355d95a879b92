"""Hard-negative captions of 3D scenes, and the 3D CLIP's hard-negative accuracy.

The 3D counterpart of `rewardsds.world.negatives` (same edits: a colour, a shape or a size changed, two
colours or shapes exchanged, the relation inverted), used to train the 3D world CLIP
(`world3d.train.clip`) and to measure it on fresh renders from random views. Inverses: left/right,
in front of/behind; "on top of" has no inverse word in the grammar, so its hard edit is the stack
upside down (the bottom object stated on top of the top one).
"""

from __future__ import annotations

import random
from dataclasses import replace

from rewardsds.world.grammar import caption_holds

from .scenes import COLOURS, SHAPES, Scene, suffix_of

INVERSE_RELATION: dict[str, str] = {"left of": "right of", "right of": "left of", "in front of": "behind",
                                     "behind": "in front of"}
"""Each horizontal relation and the one that holds when its two objects swap places."""


def _edit(scene: Scene, i: int, **changes) -> Scene:
    """The scene with object i changed."""
    return replace(scene, objects=tuple(replace(x, **changes) if j == i else x for j, x in enumerate(scene.objects)))


def swapped(scene: Scene) -> Scene:
    """The same two objects with their floor positions exchanged, captioned with the inverse relation
    (left of <-> right of, in front of <-> behind): the twin that differs from `scene` in the relation only
    (the 3D form of `rewardsds.world.negatives.swapped`)."""
    a, b = scene.objects
    return replace(scene, objects=(replace(a, x=b.x, z=b.z), replace(b, x=a.x, z=a.z)),
                   relation=INVERSE_RELATION[scene.relation])


def _edits(scene: Scene, rng: random.Random) -> list[Scene]:
    objs = list(scene.objects)
    mention = list(scene.mention_size) or [False] * len(objs)
    out = []
    for i, o in enumerate(objs):
        out.append(_edit(scene, i, colour=rng.choice([c for c in COLOURS if c != o.colour])))
        out.append(_edit(scene, i, shape=rng.choice([s for s in SHAPES if s != o.shape])))
        m = list(mention)
        m[i] = True
        out.append(replace(_edit(scene, i, size="small" if o.size == "big" else "big"), mention_size=tuple(m)))
    if len(objs) == 2:
        a, b = objs
        out.append(replace(scene, objects=(replace(a, colour=b.colour), replace(b, colour=a.colour))))
        if a.shape != b.shape:
            out.append(replace(scene, objects=(replace(a, shape=b.shape), replace(b, shape=a.shape))))
        if scene.relation in INVERSE_RELATION:
            out.append(replace(scene, relation=INVERSE_RELATION[scene.relation]))
        if scene.relation == "on top of":
            out.append(replace(scene, objects=(b, a), mention_size=tuple(reversed(mention))))
    return [s for s in out if not holds(s, scene)]  # drop edits that stay true ("A and B" -> "B and A")


def holds(stated: Scene, actual: Scene) -> bool:
    """Whether the caption of `stated` is true of `actual`: some one-to-one matching of stated to actual
    objects agrees on colour, shape and (where stated) size, and the actual positions satisfy the
    stated relation (in the world frame: +x right, +z in front, as `scenes` defines them)."""
    return caption_holds(stated, actual, _relation)


def _relation(rel: str | None, a, b) -> bool:
    return {"left of": a.x < b.x, "right of": a.x > b.x, "in front of": a.z > b.z, "behind": a.z < b.z,
            "on top of": a.base > b.base}.get(rel, True)


def hard_negatives(scene: Scene, rng: random.Random, k: int, relation_focus: float = 0.0) -> list[str]:
    """k captions (random wording, no view suffix) false of the scene; repeats if fewer edits exist.

    relation_focus: probability that the relation edits (inverse relation, upside-down stack) come
    first, as in the 2D world."""
    edits = _edits(scene, rng)
    rng.shuffle(edits)
    if relation_focus > 0 and scene.relation in (*INVERSE_RELATION, "on top of") and rng.random() < relation_focus:
        hard = [e.relation != scene.relation or e.objects == scene.objects[::-1] for e in edits]
        edits = [e for e, h in zip(edits, hard) if h] + [e for e, h in zip(edits, hard) if not h]
    return [edits[i % len(edits)].caption(rng) for i in range(k)]


def all_hard_negatives(scene: Scene) -> list[str]:
    """Every edit of the scene, in canonical wording (for evaluation)."""
    return [s.caption() for s in _edits(scene, random.Random(0))]


def hard_negative_scores(model, tok, n: int = 300, split: str = "train", seed: int = 12345, image_size: int = 32,
                         camera_frame: bool = False):
    """Yield (scene, view suffix, texts, scores) for n fresh scenes, each rendered from one random view:
    texts[0] is the true caption with that view's suffix (as `gen3d` prompts the reward), texts[1:] every
    hard negative with the same suffix, scores the CLIP's cosine similarities to the render. With
    `camera_frame`, captions are the camera's (`scenes.camera_frame`: no suffix, relations as the screen
    shows them), and so are the scene yielded and its negatives."""
    import torch
    import torch.nn.functional as F

    from rewardsds import _compat
    from rewardsds.world.metrics import to_pixel_values

    from .data import sample_batch

    model.eval()
    images, captions, scenes = sample_batch(seed, n, image_size, split=split, view_prompts=not camera_frame,
                                            camera_frame=camera_frame)
    with torch.no_grad():
        for img_np, sc, caption in zip(images, scenes, captions):
            tail = suffix_of(caption)
            texts = [sc.caption() + tail] + [neg + tail for neg in all_hard_negatives(sc)]
            enc = tok(texts, padding="max_length", max_length=tok.model_max_length, truncation=True,
                      return_tensors="pt")
            x = to_pixel_values(torch.from_numpy(img_np[None]))
            img = F.normalize(_compat.features(model.get_image_features(pixel_values=x)), dim=-1)
            txt = F.normalize(_compat.features(model.get_text_features(**enc)), dim=-1)
            yield sc, tail, texts, (img @ txt.T)[0]


def hard_negative_accuracy(model, tok, n: int = 300, split: str = "train", seed: int = 12345,
                           image_size: int = 32, camera_frame: bool = False) -> float:
    """How often a CLIP scores a render's true caption above every hard negative (`hard_negative_scores`)."""
    wins = sum(int(s[0] > s[1:].max())
               for *_, s in hard_negative_scores(model, tok, n, split, seed, image_size, camera_frame))
    return wins / n
