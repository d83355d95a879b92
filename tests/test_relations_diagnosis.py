"""Smoke test of benchmarks/relations_diagnosis.py's pure functions (no model is loaded)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from _scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rd():
    return load_script("benchmarks/relations_diagnosis.py")


def test_relation_prompts_take_every_nth_of_the_relations_section(rd):
    prompts = rd.relation_prompts(ROOT / "benchmarks" / "world_prompts.txt", every=4, k=8)
    assert len(prompts) == 8
    assert prompts[0] == "a blue square to the left of a purple diamond"
    for rel in ("left of", "right of", "above", "below"):  # the section is sorted by relation
        assert sum(rel in p for p in prompts) == 2
    assert all(" and " not in p for p in prompts)


def test_scene_for_renders_a_true_scene_and_swapped_caption_inverts(rd):
    from rewardsds.world.judge import judge
    from rewardsds.world.scenes import render

    p = "a red triangle above a yellow square"
    assert rd.swapped_caption(p) == "a red triangle below a yellow square"
    img = render(rd.scene_for(p, random.Random(3)))
    assert judge(img, p).all_correct
    assert not judge(img, rd.swapped_caption(p)).facts["relation"]
    with pytest.raises(ValueError):
        rd.scene_for("a red circle", random.Random(0))


def test_candidate_measures(rd):
    a, b = np.zeros((3, 4, 4)), np.ones((3, 4, 4))
    assert rd.mean_pairwise_rms(np.stack([a, b])) == pytest.approx(1.0)
    assert rd.mean_pairwise_rms(np.stack([a])) == 0.0
    f1, f2 = {"relation": True, "count": True}, {"relation": False, "count": True}
    assert rd.n_distinct([f1, dict(f1), f2]) == 2
    assert rd.ranking_outcome(5, 3) == 1 and rd.ranking_outcome(3, 3) == 0 and rd.ranking_outcome(2, 3) == -1
    assert [rd.t_bin(t) for t in (0, 299, 300, 600, 999)] == ["t<300", "t<300", "300<=t<600", "t>=600", "t>=600"]
    assert rd.layout(True, False) == "right" and rd.layout(False, True) == "inverted"
    assert rd.layout(False, False) == "none"
    assert rd.layout(True, True, distinct=False) == "unreadable"  # two copies of one object
    mean, lo, hi = rd.bootstrap_ci([0.0, 1.0, 1.0, 0.0])
    assert mean == 0.5 and 0.0 <= lo <= mean <= hi <= 1.0


def test_classify(rd):
    stated = ("red", "blue")
    ok = {"object0.colour": True, "object0.shape": True, "object1.colour": True, "object1.shape": True,
          "relation": True, "count": True}
    assert rd.classify(ok, ["red", "blue"], stated) == "correct"
    assert rd.classify({**ok, "relation": False}, ["red", "blue"], stated) == "relation only"
    assert rd.classify({**ok, "count": False, "object1.colour": False}, ["red"], stated) == "fewer components"
    assert rd.classify({**ok, "count": False}, ["red", "blue", "red"], stated) == "more components"
    assert rd.more_components_kind(["red", "blue", "red"], stated) == "duplicate"
    assert rd.more_components_kind(["red", "blue", "other"], stated) == "stray"
    assert rd.classify({**ok, "object1.colour": False}, ["red", "red"], stated) == "twin"
    assert rd.classify({**ok, "object0.colour": False}, ["green", "blue"], stated) == "wrong colour"
    assert rd.classify({**ok, "object1.shape": False}, ["red", "blue"], stated) == "wrong shape/size"
