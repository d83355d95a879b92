"""The 3D world's grammar: captions, the held-out split, view suffixes, vocabulary, layout."""

import random
import re

import pytest

from rewardsds.render.cameras import view_label
from rewardsds.world.scenes import COLOURS as COLOURS_2D
from rewardsds.world3d.scenes import (
    COLOURS,
    HELD_OUT,
    RELATIONS,
    SHAPES,
    SIZE_RANGES,
    SIZE_SPLIT,
    Scene,
    allowed_pairs,
    parse_caption,
    sample_scene,
    view_suffix,
    vocabulary,
)


def _scenes(n, seed=0, split="all"):
    rng = random.Random(seed)
    return [(sample_scene(rng, split=split), rng) for _ in range(n)]


def test_palette_is_the_2d_worlds():
    assert COLOURS is COLOURS_2D


def test_captions_parse_back_to_the_scenes_facts():
    for sc, rng in _scenes(400):
        cap = sc.caption(rng)
        parsed = parse_caption(cap + view_suffix(rng.uniform(0, 360), rng.uniform(0, 90)))
        assert len(parsed.objects) == len(sc.objects), cap
        for stated, obj, said in zip(parsed.objects, sc.objects, sc.mention_size):
            assert (stated.colour, stated.shape) == (obj.colour, obj.shape), cap
            assert stated.size == (obj.size if said else None), cap
        assert parsed.relation == sc.relation, cap


def test_every_relation_is_drawn_and_canonical_wording():
    seen = {sc.relation for sc, _ in _scenes(300)}
    assert seen == set(RELATIONS) | {None}
    assert parse_caption("a big red cube to the left of a small blue sphere").relation == "left of"
    assert parse_caption("a red cube on the right of a blue sphere").relation == "right of"
    assert parse_caption("a red cone stacked on a blue cube").relation == "on top of"
    with pytest.raises(ValueError):
        parse_caption("a red circle")  # a 2D shape is no 3D object


def test_splits_keep_held_out_pairs_apart():
    assert set(allowed_pairs("train")).isdisjoint(HELD_OUT)
    assert set(allowed_pairs("train")) | HELD_OUT == set(allowed_pairs("all"))
    for sc, _ in _scenes(500, split="train"):
        assert not any((o.colour, o.shape) in HELD_OUT for o in sc.objects)
    for sc, _ in _scenes(300, split="heldout"):
        # as in the 2D world: the first object is held out, a second one is a training pair
        assert (sc.objects[0].colour, sc.objects[0].shape) in HELD_OUT
        assert all((o.colour, o.shape) not in HELD_OUT for o in sc.objects[1:])


def test_sizes_and_layout_fit_the_field_box():
    for sc, _ in _scenes(500):
        assert len({o.colour for o in sc.objects}) == len(sc.objects)
        for o in sc.objects:
            lo, hi = SIZE_RANGES[o.size]
            assert lo <= o.half <= hi and (o.half > SIZE_SPLIT) == (o.size == "big")
            x, y, z = o.centre
            assert max(abs(x), abs(z)) + o.half < 0.95 and -1 < o.base and y + o.half < 0.95
        if sc.relation == "on top of":
            top, bottom = sc.objects
            assert bottom.shape in ("cube", "cylinder") and top.base == pytest.approx(bottom.base + 2 * bottom.half)


def test_view_suffix_thresholds():
    cases = {(0, 0): "front", (44, 30): "front", (-44, 0): "front", (46, 0): "side", (90, 60): "side",
             (134, 0): "side", (136, 0): "back", (180, 10): "back",
             (240, 0): "side", (225, 0): "back", (315, 0): "front",
             (0, 61): "overhead", (180, 89): "overhead"}
    for (az, el), label in cases.items():
        assert view_suffix(az, el) == f", {label} view", (az, el)
    for az in range(-360, 361, 15):  # one definition with gen3d's view prompts
        for el in (0, 30, 60, 75):
            assert view_suffix(az, el) == f", {view_label(el, az)} view"


def test_vocabulary_covers_every_caption():
    vocab = set(vocabulary())
    assert set(COLOURS) | set(SHAPES) | {"front", "side", "back", "overhead", "view", ","} <= vocab
    for sc, rng in _scenes(300):
        for cap in (sc.caption(), sc.caption(rng) + view_suffix(rng.uniform(0, 360), rng.uniform(0, 90))):
            # the tokenizer's Whitespace pre-tokenizer splits words and punctuation this way
            assert set(re.findall(r"\w+|[^\w\s]+", cap)) <= vocab, cap


def test_scene_is_a_plain_value():
    sc = sample_scene(random.Random(5), 2)
    assert sc == sample_scene(random.Random(5), 2) and isinstance(sc, Scene)
