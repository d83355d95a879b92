"""The 3D judge reads fields voxelised from known scenes exactly, and names exactly the wrong facts."""

import functools
import math
import random
from dataclasses import replace

import numpy as np
import pytest
import torch

from rewardsds.world3d.judge import judge3d, judge_field, voxelise
from rewardsds.world3d.render import scene_density_colour
from rewardsds.world3d.scenes import COLOURS, GROUND_Y, RELATIONS, SHAPES, SIZE_RANGES, Obj, Scene, sample_scene

RES = 48  # coarse enough to be fast, fine enough for the smallest cone (~9 voxels across)


def _field(scene):
    return voxelise(functools.partial(scene_density_colour, scene), 1.0, RES)


def _wrong(scene, caption_scene):
    """The facts judged wrong when the field of `scene` is read against `caption_scene`'s caption."""
    verdict = judge3d(*_field(scene), caption_scene.caption())
    return {k for k, ok in verdict.facts.items() if not ok}, verdict


def _told(scene):
    return replace(scene, mention_size=(True,) * len(scene.objects))


def _scene_with(relation, seed=0, differ_in_shape=False):
    rng = random.Random(seed)
    while True:
        sc = sample_scene(rng, 2, split="all")
        if sc.relation == relation and (not differ_in_shape or sc.objects[0].shape != sc.objects[1].shape):
            return _told(sc)


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_colour_and_size_is_read(shape):
    for colour in COLOURS:
        for size, (lo, hi) in SIZE_RANGES.items():
            sc = Scene((Obj(colour, shape, size, 0.1, -0.05, GROUND_Y, lo if colour < "o" else hi),), None, (True,))
            verdict = judge_field(functools.partial(scene_density_colour, sc), sc.caption(), resolution=RES)
            assert verdict.all_correct and len(verdict.facts) == 4, (sc.caption(), verdict)


@pytest.mark.parametrize("relation", RELATIONS)
def test_every_relation_is_read(relation):
    for seed in range(3):
        sc = _scene_with(relation, seed)
        verdict = judge3d(*_field(sc), sc.caption(random.Random(seed)) + ", side view")
        assert verdict.all_correct, (sc, verdict)
        assert ("relation" in verdict.facts) == (relation != "and")
        assert verdict.accuracy == 1.0 and verdict.duplicated == ()


def test_random_scenes_including_held_out_pairs_are_all_right():
    rng = random.Random(7)
    for split in ("train", "heldout"):
        for _ in range(6):
            sc = _told(sample_scene(rng, split=split))
            assert judge3d(*_field(sc), sc.caption(rng)).all_correct, sc


def test_swapped_colours_are_the_only_wrong_facts():
    sc = _scene_with("left of", differ_in_shape=True)
    a, b = sc.objects
    swapped = replace(sc, objects=(replace(a, colour=b.colour), replace(b, colour=a.colour)))
    assert _wrong(sc, swapped)[0] == {"object0.colour", "object1.colour"}


@pytest.mark.parametrize("true,said", [("left of", "right of"), ("right of", "left of"),
                                       ("in front of", "behind"), ("behind", "in front of")])
def test_wrong_relation_is_the_only_wrong_fact(true, said):
    sc = _scene_with(true, seed=1)
    assert _wrong(sc, replace(sc, relation=said))[0] == {"relation"}


def test_stack_upside_down_is_a_wrong_relation():
    sc = _scene_with("on top of", seed=2)
    flipped = replace(sc, objects=sc.objects[::-1])  # "the bottom one on top of the top one"
    assert _wrong(sc, flipped)[0] == {"relation"}
    side_by_side = _scene_with("left of", seed=2)
    assert _wrong(side_by_side, replace(side_by_side, relation="on top of"))[0] == {"relation"}


def test_duplicated_object_breaks_only_count_and_is_named():
    one = Obj("red", "cube", "big", -0.45, 0.0, GROUND_Y, 0.34)
    field = Scene((one, replace(one, x=0.45)))  # the 3D Janus failure: the object made twice
    wrong, verdict = _wrong(field, _told(Scene((one,))))
    assert wrong == {"count"} and verdict.duplicated == ("red cube",)


def test_missing_object_fails_its_facts_the_relation_and_count():
    sc = _scene_with("in front of", seed=3)
    wrong, _ = _wrong(replace(sc, objects=sc.objects[:1]), sc)
    assert wrong == {"object1.colour", "object1.shape", "object1.size", "relation", "count"}


def test_cone_where_a_cube_should_be_fails_only_the_shape():
    cube = Obj("blue", "cube", "big", 0.0, 0.45, GROUND_Y, 0.33)
    other = Obj("yellow", "sphere", "small", 0.0, -0.45, GROUND_Y, 0.22)
    asked = Scene((cube, other), "in front of", (True, True))
    made = replace(asked, objects=(replace(cube, shape="cone"), other))
    assert _wrong(made, asked)[0] == {"object0.shape"}


def test_wrong_size_and_extra_object():
    obj = Obj("green", "sphere", "big", 0.0, 0.0, GROUND_Y, 0.36)
    assert _wrong(Scene((obj,)), Scene((replace(obj, size="small"),), None, (True,)))[0] == {"object0.size"}
    extra = Scene((obj, Obj("orange", "cone", "small", 0.6, 0.6, GROUND_Y, 0.2)))
    assert _wrong(extra, Scene((obj,)))[0] == {"count"}


def test_specks_and_off_palette_blobs():
    obj = Obj("purple", "cylinder", "big", 0.0, 0.0, GROUND_Y, 0.34)
    density, colour = _field(Scene((obj,)))
    density, colour = density.copy(), colour.copy()
    density[2:4, 2:4, 2:4], colour[2:4, 2:4, 2:4] = 1.0, COLOURS["red"]  # a speck: ignored
    assert judge3d(density, colour, "a purple cylinder").all_correct
    density[5:15, 30:40, 5:15], colour[5:15, 30:40, 5:15] = 1.0, (0.5, 0.5, 0.5)  # a grey box: an extra object
    verdict = judge3d(density, colour, "a purple cylinder")
    assert {k for k, ok in verdict.facts.items() if not ok} == {"count"}
    assert any(c.colour == "other" for c in verdict.components)


def test_turned_cube_is_still_a_cube_and_empty_field_fails():
    yaw = math.radians(30.0)

    def turned_cube(p):  # a red cube turned 30 degrees about the vertical
        c, s = math.cos(yaw), math.sin(yaw)
        u, w = c * p[:, 0] + s * p[:, 2], -s * p[:, 0] + c * p[:, 2]
        inside = (u.abs() <= 0.33) & (w.abs() <= 0.33) & ((p[:, 1] + 0.2).abs() <= 0.33)
        rgb = torch.tensor(COLOURS["red"]).expand(p.shape[0], 3)
        return inside.float(), rgb

    assert judge_field(turned_cube, "a big red cube", resolution=RES).all_correct
    empty = judge3d(np.zeros((RES,) * 3), np.zeros((RES,) * 3 + (3,)), "a red cube")
    assert empty.accuracy == 0.0 and empty.components == ()


def test_density_threshold_reads_radiance_field_units():
    obj = Obj("yellow", "cone", "big", 0.0, 0.0, GROUND_Y, 0.35)
    density, colour = _field(Scene((obj,)))
    assert judge3d(30.0 * density + 2.0, colour, "a yellow cone", density_threshold=10.0).all_correct
