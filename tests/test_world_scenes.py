import random

import numpy as np
import pytest

from rewardsds.world.judge import judge, parse_prompt
from rewardsds.world.negatives import all_hard_negatives
from rewardsds.world.scenes import HELD_OUT, render, sample_batch, sample_scene
from rewardsds.world.tokenizer import build_tokenizer


def test_renderer_is_deterministic():
    a, ca, _ = sample_batch(7, 8)
    b, cb, _ = sample_batch(7, 8)
    assert np.array_equal(a, b) and ca == cb
    c, _, _ = sample_batch(8, 8)
    assert not np.array_equal(a, c)
    assert a.shape == (8, 3, 32, 32) and a.min() >= 0 and a.max() <= 1


def test_size_is_a_parameter():
    sc = sample_scene(random.Random(0), 1)
    assert render(sc, 48).shape == (48, 48, 3)


def test_training_split_never_shows_held_out_pairs():
    rng = random.Random(0)
    for _ in range(500):
        sc = sample_scene(rng, split="train")
        assert not any((o.colour, o.shape) in HELD_OUT for o in sc.objects)
    sc = sample_scene(rng, 1, split="heldout")
    assert (sc.objects[0].colour, sc.objects[0].shape) in HELD_OUT


def test_judge_is_exact_on_renders():
    rng = random.Random(1)
    accs = []
    for _ in range(300):
        sc = sample_scene(rng, split="all")
        accs.append(judge(render(sc), sc.caption(rng)).accuracy)
    assert np.mean(accs) >= 0.98


def test_judge_catches_wrong_facts():
    rng = random.Random(2)
    for _ in range(40):
        sc = sample_scene(rng, 2)
        img = render(sc)
        for neg in all_hard_negatives(sc):
            assert not judge(img, neg).all_correct, neg


@pytest.mark.parametrize("kind", ["blank", "uniform", "gaussian"])
def test_judge_is_not_fooled_by_blank_or_noise(kind):
    rng, r = random.Random(3), np.random.default_rng(0)
    accs = []
    for _ in range(30):
        cap = sample_scene(rng).caption()
        img = {"blank": np.full((32, 32, 3), 0.94), "uniform": r.random((32, 32, 3)),
               "gaussian": np.clip(0.5 + 0.3 * r.standard_normal((32, 32, 3)), 0, 1)}[kind]
        v = judge(img, cap)
        assert not v.all_correct
        accs.append(v.accuracy)
    assert np.mean(accs) < 0.3


def test_parse_prompt():
    p = parse_prompt("A big red circle to the left of a small blue square")
    assert [(o.colour, o.shape, o.size) for o in p.objects] == [("red", "circle", "big"), ("blue", "square", "small")]
    assert p.relation == "left of"
    assert parse_prompt("a green diamond under a yellow triangle").relation == "below"
    with pytest.raises(ValueError):
        parse_prompt("a cat")


def test_tokenizer_round_trip(tmp_path):
    from transformers import AutoTokenizer

    tok = build_tokenizer()
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = "a small red circle to the left of a big blue square"
    ids = again(text).input_ids
    assert ids == tok(text).input_ids
    assert ids[0] == again.bos_token_id and ids[-1] == again.eos_token_id != 2
    assert again.decode(ids, skip_special_tokens=True) == text
    assert again("a zebra").input_ids[2] == again.unk_token_id


def test_swapped_twin_inverts_the_relation():
    from rewardsds.world.negatives import holds, swapped

    rng = random.Random(4)
    n = 0
    while n < 50:
        sc = sample_scene(rng, 2)
        if sc.relation == "and":
            continue
        twin = swapped(sc)
        assert holds(twin, twin) and not holds(sc, twin) and holds(sc, sc)
        n += 1
