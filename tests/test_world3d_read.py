"""The 2D reader of one view (`world3d.read`): right on exact renders, and wrong images read as wrong.

Renders come from `world3d.render` at random views of the training range (elevation 0-60), anti-aliased
as the training data (supersample 2). Measured with 1,000 single objects: 99.8% of facts right, shape
99.3% (the misses are small cubes and cylinders seen nearly level); the test asks for 95% on 120.
"""

import random
from dataclasses import replace

import numpy as np
import pytest
import torch

from rewardsds.world3d.read import read_view, split_view
from rewardsds.world3d.render import random_views, render_views
from rewardsds.world3d.scenes import BACKGROUND, COLOURS, SHAPES, Obj, Scene, sample_scene, view_suffix


def _views(n: int, seed: int) -> list[tuple[float, float]]:
    az, el = random_views(n, torch.Generator().manual_seed(seed))
    return list(zip(az.tolist(), el.tolist()))


def _img(scene: Scene, az: float, el: float) -> np.ndarray:
    return render_views(scene, [az], [el], 32, supersample=2)[0].numpy()


def test_view_suffix_is_split_off():
    assert split_view("a red cube, front view") == ("a red cube", "front")
    assert split_view("a red cube on a blue cylinder , overhead view") == ("a red cube on a blue cylinder ", "overhead")
    assert split_view("a red cube") == ("a red cube", None)


def test_reader_is_right_on_true_renders_of_single_objects():
    rng = random.Random(11)
    facts = []
    for az, el in _views(120, 11):
        sc = sample_scene(rng, 1)
        r = read_view(_img(sc, az, el), sc.caption(rng) + view_suffix(az, el))
        assert set(r.facts) == {"object0.colour", "object0.shape", "count"}
        facts += list(r.facts.values())
    assert np.mean(facts) >= 0.95, np.mean(facts)


def test_wrong_colour_and_wrong_shape_read_as_wrong():
    rng = random.Random(12)
    colour_caught = shape_caught = 0
    views = _views(40, 12)
    for az, el in views:
        sc = sample_scene(rng, 1)
        o = sc.objects[0]
        cap = sc.caption() + view_suffix(az, el)
        other_colour = replace(sc, objects=(replace(o, colour=rng.choice([c for c in COLOURS if c != o.colour])),))
        other_shape = replace(sc, objects=(replace(o, shape=rng.choice([s for s in SHAPES if s != o.shape])),))
        r = read_view(_img(other_colour, az, el), cap)
        colour_caught += not r.facts["object0.colour"] and not r.facts["count"] and not r.all_correct
        shape_caught += not read_view(_img(other_shape, az, el), cap).facts["object0.shape"]
    assert colour_caught == len(views)
    assert shape_caught >= 0.9 * len(views), shape_caught


@pytest.mark.parametrize("view_az", [0.0, 180.0])
def test_swapped_left_right_reads_as_wrong_on_front_and_back_views(view_az):
    rng = random.Random(13)
    for _ in range(8):
        az, el = view_az + rng.uniform(-30, 30), rng.uniform(5, 45)
        a = Obj("red", rng.choice(SHAPES), "big", x=-0.45, z=0.0, half=0.3)
        b = Obj("blue", rng.choice(SHAPES), "big", x=0.45, z=0.0, half=0.3)
        sc = Scene((a, b), "left of")
        cap = sc.caption() + view_suffix(az, el)
        assert read_view(_img(sc, az, el), cap).facts["relation"], (az, el, cap)
        swapped = Scene((replace(a, x=0.45), replace(b, x=-0.45)), "left of")
        assert not read_view(_img(swapped, az, el), cap).facts["relation"], (az, el, cap)


def test_side_views_do_not_ask_left_right_and_a_blank_image_is_all_wrong():
    sc = Scene((Obj("red", "cube", "big", x=-0.45), Obj("blue", "sphere", "big", x=0.45)), "left of")
    r = read_view(_img(sc, 90.0, 20.0), sc.caption() + ", side view")
    assert "relation" not in r.facts and r.facts["object0.colour"] and r.facts["object1.colour"]
    blank = np.broadcast_to(np.array(BACKGROUND, np.float32)[:, None, None], (3, 32, 32))
    r = read_view(blank, "a red cube, front view")
    assert not r.facts["object0.colour"] and not r.facts["object0.shape"] and r.accuracy < 0.5
