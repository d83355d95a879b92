"""Pure helpers of the relations diagnosis: the relational prompts and scenes that satisfy them, the bins,
layouts and failure classes, and the small statistics (tested in tests/test_relations_diagnosis.py)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np

T_BINS = ((0, 300, "t<300"), (300, 600, "300<=t<600"), (600, 1001, "t>=600"))
STEP_BINS = ((0, 25, "steps 0-24"), (25, 75, "steps 25-74"), (75, 10**9, "steps 75+"))
OBJECT_FACTS = ("object0.colour", "object0.shape", "object1.colour", "object1.shape")


# ----------------------------------------------------------------------------------------------------
# pure helpers (tested in tests/test_relations_diagnosis.py)


def relation_prompts(path: Path, every: int = 4, k: int = 8, offset: int = 0) -> list[str]:
    """Every `every`-th prompt (from `offset`) of the prompt file's relations section, at most k."""
    section, lines = None, []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("#"):
            section = line.lower()
        elif line and section is not None and "relation" in section and "held-out" not in section:
            lines.append(line)
    return lines[offset::every][:k]


def scene_for(prompt: str, rng: random.Random):
    """A random scene (positions and sizes drawn as `scenes.sample_scene` draws them) of which the
    two-object caption `prompt` is true."""
    from rewardsds.world.judge import parse_prompt
    from rewardsds.world.scenes import SIZE_RANGES, Obj, Scene

    p = parse_prompt(prompt)
    if len(p.objects) != 2 or p.relation in (None, "and"):
        raise ValueError(f"{prompt!r} is not a two-object prompt with a spatial relation")
    sizes = [o.size or rng.choice(tuple(SIZE_RANGES)) for o in p.objects]
    sides = [rng.uniform(*SIZE_RANGES[s]) for s in sizes]
    near, far = 0.25 + rng.uniform(-0.03, 0.03), 0.75 + rng.uniform(-0.03, 0.03)
    a0, a1 = (near, far) if p.relation in ("left of", "above") else (far, near)
    o0, o1 = 0.5 + rng.uniform(-0.1, 0.1), 0.5 + rng.uniform(-0.1, 0.1)
    horizontal = p.relation in ("left of", "right of")
    pos = [(a0, o0), (a1, o1)] if horizontal else [(o0, a0), (o1, a1)]
    objs = tuple(Obj(o.colour, o.shape, s, *xy, side) for o, s, xy, side in zip(p.objects, sizes, pos, sides))
    mention = tuple(o.size is not None for o in p.objects)
    return Scene(objs, p.relation, mention)


def swapped_caption(prompt: str) -> str:
    """The caption with the inverse relation ("left of" <-> "right of", "above" <-> "below"), via
    `world.negatives.swapped` (canonical wording)."""
    from rewardsds.world.negatives import swapped

    return swapped(scene_for(prompt, random.Random(0))).caption()


def fact_vector(facts: dict[str, bool]) -> tuple[bool, ...]:
    return tuple(facts[k] for k in sorted(facts))


def n_distinct(fact_dicts: list[dict[str, bool]]) -> int:
    """Number of distinct judge fact-vectors among the candidates."""
    return len({fact_vector(f) for f in fact_dicts})


def mean_pairwise_rms(images: np.ndarray) -> float:
    """Mean over pairs of the RMS pixel distance (images [N,...] in [0,1]); 0 for one image."""
    x = images.reshape(len(images), -1).astype(np.float64)
    pairs = list(itertools.combinations(range(len(x)), 2))
    if not pairs:
        return 0.0
    return float(np.mean([np.sqrt(np.mean((x[i] - x[j]) ** 2)) for i, j in pairs]))


def t_bin(t: int) -> str:
    for lo, hi, name in T_BINS:
        if lo <= t < hi:
            return name
    raise ValueError(f"t={t} outside [0, 1000]")


def step_bin(step: int) -> str:
    for lo, hi, name in STEP_BINS:
        if lo <= step < hi:
            return name
    raise ValueError(f"step={step} < 0")


def layout(rel_true: bool, rel_inverse: bool, distinct: bool = True) -> str:
    """The image's layout against the caption: 'unreadable' unless both stated colours are found in two
    different components (two copies of ONE object satisfy any relation and its inverse: the judge's
    relation fact is then vacuous); else 'right' (the stated relation holds), 'inverted' (the inverse
    holds) or 'none' (neither: centres too close along the axis)."""
    if not distinct:
        return "unreadable"
    return "right" if rel_true else ("inverted" if rel_inverse else "none")


def classify(facts: dict[str, bool], colours: list[str], stated: tuple[str, ...]) -> str:
    """One failure class for a two-object image, from the judge's facts and its components' colours.

    Order: correct; fewer components than stated (an object missing or merged into the other); more
    (an object duplicated, or a stray blob); twin (the right number of components, but two of one
    colour: one stated object drawn twice, the other absent); wrong colour (an object's colour, or a
    component of an unstated colour / 'other'); wrong shape or size; relation wrong with the right
    objects."""
    if all(facts.values()):
        return "correct"
    n = len(colours)
    if n < len(stated):
        return "fewer components"
    if n > len(stated):
        return "more components"
    if len(set(colours)) < n and any(colours.count(c) > 1 for c in stated):
        return "twin"
    if not all(facts.get(f"object{i}.colour", True) for i in range(len(stated))) or \
            any(c not in stated for c in colours):
        return "wrong colour"
    if not all(v for k, v in facts.items() if k.endswith((".shape", ".size"))):
        return "wrong shape/size"
    if not facts.get("relation", True):
        return "relation only"
    return "other"


CLASSES = ("correct", "fewer components", "more components", "twin", "wrong colour", "wrong shape/size",
           "relation only", "other")


def more_components_kind(colours: list[str], stated: tuple[str, ...]) -> str:
    """For images with extra components: 'duplicate' (an extra blob of a stated colour) or 'stray'."""
    counts = {c: colours.count(c) for c in set(colours)}
    return "duplicate" if any(counts.get(c, 0) > 1 for c in stated) else "stray"


def ranking_outcome(right_top: int, right_bottom: int) -> int:
    """+1 when the reward's top candidate has more judge facts right than its bottom one, -1 fewer, 0 tie."""
    return int(np.sign(right_top - right_bottom))


def bootstrap_ci(per_prompt: list[float], n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, 2.5%, 97.5%) of the mean over prompts, percentile bootstrap over prompts."""
    x = np.asarray([v for v in per_prompt if v is not None and np.isfinite(v)], dtype=np.float64)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (n, len(x)))].mean(1)
    return float(x.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def mean_or_nan(values) -> float:
    """Mean of the finite values (None and NaN skipped); NaN when there are none."""
    values = [float(v) for v in values if v is not None and np.isfinite(float(v))]
    return float(np.mean(values)) if values else float("nan")
