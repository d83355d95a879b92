"""What the 2D and 3D worlds share about captions and the facts they state, written once.

Each world keeps its own words (colours, shapes, templates, relation words and keywords) in its
`scenes` module and passes them in; this module holds only the logic: composing a caption (`CaptionedScene`), listing
a grammar's words, the held-out split of colour-shape pairs, reading a caption back
(`StatedObject`, `Parsed`), whether a caption is true of a scene, and the graders' facts
(``object{i}.colour/.shape/.size``, ``relation``, ``count``) with their accuracy. Standard library
only, so both `scenes` modules stay light.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class CaptionedScene:
    """1-2 objects (each with colour, shape and size) and how they are captioned. A world's `Scene`
    subclasses it with its object type and sets its wordings, `single_templates` and `relation_words`."""

    objects: tuple
    relation: str | None = None  # for two objects: objects[0] <relation> objects[1]
    mention_size: tuple[bool, ...] = field(default=())
    single_templates: ClassVar[Sequence[str]] = ()
    relation_words: ClassVar[Mapping[str, Sequence[str]]] = {}

    def caption(self, rng: random.Random | None = None) -> str:
        """``a [size] colour shape`` per object, in a single-object template or joined by a relation phrase;
        with rng=None the first (canonical) wording is used."""
        pick = (lambda xs: xs[0]) if rng is None else rng.choice
        phrases = []
        for i, o in enumerate(self.objects):
            size = f"{o.size} " if (self.mention_size[i] if self.mention_size else False) else ""
            phrases.append(f"a {size}{o.colour} {o.shape}")
        if len(phrases) == 1:
            return pick(self.single_templates).format(o=phrases[0])
        return f"{phrases[0]} {pick(self.relation_words[self.relation])} {phrases[1]}"


def vocabulary(words: Iterable[str], single_templates: Sequence[str],
               relation_words: Mapping[str, Sequence[str]]) -> list[str]:
    """`words` plus every word of the templates and relation phrases, sorted."""
    out = set(words)
    for t in single_templates:
        out |= set(t.replace("{o}", "").split())
    for ws in relation_words.values():
        for w in ws:
            out |= set(w.split())
    return sorted(out)


def allowed_pairs(split: str, colours: Iterable[str], shapes: Sequence[str],
                  held_out: frozenset[tuple[str, str]]) -> list[tuple[str, str]]:
    """(colour, shape) pairs of a split: 'train' (all but `held_out`), 'heldout' or 'all'."""
    pairs = [(c, s) for c in colours for s in shapes]
    if split == "train":
        return [p for p in pairs if p not in held_out]
    if split == "heldout":
        return sorted(held_out)
    if split == "all":
        return pairs
    raise ValueError(f"unknown split {split!r}; expected train, heldout or all")


def object_pattern(colours: Iterable[str], shapes: Iterable[str]) -> re.Pattern:
    """``[small|big] colour shape`` as a regex with groups (size, colour, shape)."""
    return re.compile(r"\b(?:(small|big)\s+)?(" + "|".join(colours) + r")\s+(" + "|".join(shapes) + r")\b")


@dataclass(frozen=True)
class StatedObject:
    colour: str
    shape: str
    size: str | None


@dataclass(frozen=True)
class Parsed:
    objects: tuple[StatedObject, ...]
    relation: str | None


def parse(text: str, pattern: re.Pattern, keywords: Sequence[tuple[str, str]]) -> Parsed | None:
    """The first two objects `pattern` finds in `text` and the relation of the first keyword (in
    `keywords` order) among the words between them, "and" when none is; None when no object is named."""
    low = text.lower()
    matches = list(pattern.finditer(low))
    if not matches:
        return None
    objs = tuple(StatedObject(m.group(2), m.group(3), m.group(1)) for m in matches[:2])
    relation = None
    if len(matches) >= 2:
        between = low[matches[0].end(): matches[1].start()].split()
        relation = next((rel for word, rel in keywords if word in between), "and")
    return Parsed(objs, relation)


def draw_scenes(sample_scene: Callable, rng, batch: int, split: str, two_objects: float | None) -> list:
    """`batch` scenes from a world's ``sample_scene(rng, n_objects, split)``: its own 1-or-2 mix when
    `two_objects` is None, else two objects with that probability (the trainers' --two-objects)."""
    if two_objects is None:
        return [sample_scene(rng, split=split) for _ in range(batch)]
    return [sample_scene(rng, 2 if rng.random() < two_objects else 1, split) for _ in range(batch)]


def caption_holds(stated, actual, relation: Callable) -> bool:
    """Whether the caption of scene `stated` is true of scene `actual`: some one-to-one matching of the
    stated objects to the actual ones agrees on colour, shape and (where stated) size, and
    ``relation(stated.relation, a, b)`` holds for the matched actual objects."""
    if len(stated.objects) != len(actual.objects):
        return False
    mention = stated.mention_size or (False,) * len(stated.objects)
    for perm in itertools.permutations(actual.objects):
        if all(o.colour == a.colour and o.shape == a.shape and (not m or o.size == a.size)
               for o, a, m in zip(stated.objects, perm, mention)):
            if len(perm) == 1 or relation(stated.relation, perm[0], perm[1]):
                return True
    return False


class Facts:
    """What a grader's result (`judge.Verdict`, `world3d.read.Reading`) derives from its `facts`."""

    facts: dict[str, bool]

    @property
    def accuracy(self) -> float:
        return sum(self.facts.values()) / max(len(self.facts), 1)

    @property
    def all_correct(self) -> bool:
        return all(self.facts.values())


def best_facts(parsed: Parsed, found: Sequence, relation_holds: Callable) -> dict[str, bool]:
    """The stated facts over found objects (each with colour, shape, size), under the assignment of
    stated objects to found ones (or to nothing) that satisfies most; ``count``: exactly as many found
    as stated. ``relation_holds(rel, a, b)`` decides relations other than "and"."""
    n = len(parsed.objects)
    slots = list(found) + [None] * n
    best: dict[str, bool] | None = None
    for assign in itertools.permutations(range(len(slots)), n):
        chosen = [slots[j] for j in assign]
        facts: dict[str, bool] = {}
        for i, (obj, c) in enumerate(zip(parsed.objects, chosen)):
            facts[f"object{i}.colour"] = c is not None and c.colour == obj.colour
            facts[f"object{i}.shape"] = c is not None and c.shape == obj.shape
            if obj.size is not None:
                facts[f"object{i}.size"] = c is not None and c.size == obj.size
        if parsed.relation is not None and parsed.relation != "and":
            facts["relation"] = None not in chosen and relation_holds(parsed.relation, *chosen)
        facts["count"] = len(found) == n
        if best is None or sum(facts.values()) > sum(best.values()):
            best = facts
    assert best is not None
    return best
