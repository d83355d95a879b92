"""The 3D table's oracle control (`benchmarks/oracle3d.py`): the view reader as a reward ranks a true render
above wrong ones, and loads through the reward grammar the way table3d's workers load it."""

from __future__ import annotations

import torch

from tests._scripts import load_script

table3d = load_script("benchmarks/table3d.py")  # puts the repository root on sys.path, as its workers have it
oracle3d = load_script("benchmarks/oracle3d.py")


def _render(caption: str, az: float = 10.0, el: float = 20.0) -> torch.Tensor:
    """[1,3,32,32] exact render of the scene a single-object caption states, at the origin."""
    from rewardsds.world3d.render import render_views
    from rewardsds.world3d.scenes import Obj, Scene, parse_caption

    o = parse_caption(caption).objects[0]
    scene = Scene((Obj(o.colour, o.shape, "big"),))
    return render_views(scene, [az], [el], 32, supersample=2).float()


def test_true_render_scores_every_fact_and_wrong_ones_less():
    img = _render("a red cube").repeat(3, 1, 1, 1)
    scores = oracle3d.facts_read_right(img, ["a red cube, front view", "a blue cube, front view",
                                             "a red cone, front view"])
    assert scores.shape == (3,)
    assert scores[0] == 1.0
    assert scores[1] < 1.0 and scores[2] < 1.0


def test_spec_loads_through_the_reward_grammar():
    from rewardsds.rewards.factory import load_reward, spec_problem

    spec = "benchmarks.oracle3d:facts_read_right"
    assert spec_problem(spec) is None
    reward = load_reward(spec)
    img = _render("a green sphere", az=180.0)
    assert reward(img, ["a green sphere, back view"]).item() == 1.0


def test_spread_counts_steps_whose_candidates_differ_in_a_fact(tmp_path):
    import json

    run = tmp_path / "reward-sds" / "a_red_cube_to_the_left_of_a_blue_sphere_s0"
    run.mkdir(parents=True)
    tie = [[1.0 + 0.001 * c for c in (30, 31, 29, 30)]] * 4  # the same facts, CLIP tie-breaks only
    one_fact = [[5 / 6, 1.0, 1.0, 1.0]] + [[1.0] * 4] * 3  # candidate 0 misses one fact on one view of 4
    steps = [{"step": 0, "rewards": tie}, {"step": 1, "rewards": one_fact}, {"step": 2, "rewards": None}]
    (run / "log.jsonl").write_text("\n".join(json.dumps(r) for r in steps) + "\n")
    r = oracle3d.spread(run / "log.jsonl")
    assert r["reward_steps"] == 2 and r["differ"] == 0.5
    assert abs(r["mean_spread"] - (0.002 / 2 + (1 / 6) / 4 / 2)) < 1e-6
    assert oracle3d.main([str(tmp_path)]) == 0
    assert oracle3d.main([str(tmp_path / "nothing")]) == 2


def test_logged_scores_split_back_into_facts_and_clip_and_agreement_reads_the_ranking(tmp_path):
    import json

    import numpy as np

    cap = "a red cube to the left of a blue sphere"
    prompts = [f"{cap}, side view", f"{cap}, front view"]  # 5 facts asked from the side, 6 from the front
    assert [oracle3d.facts_asked(p) for p in prompts] == [5, 6]
    facts = np.array([[0.2, 0.4, 0.6, 1.0], [1 / 6, 0.5, 0.5, 5 / 6]])
    clip = np.array([[12.0, 30.0, 45.5, 99.0], [3.0, 0.0, 60.0, 25.0]])
    f, c = oracle3d.split_terms((facts + 0.001 * clip).tolist(), prompts)
    assert np.allclose(f, facts) and np.allclose(c, clip, atol=1e-6)

    def log(clip_order: np.ndarray) -> dict:
        run = tmp_path / str(len(list(tmp_path.iterdir())))
        run.mkdir()
        rewards = facts + 0.001 * np.array([clip_order, clip_order])
        (run / "log.jsonl").write_text(json.dumps({"rewards": rewards.tolist(), "reward_prompts": prompts}) + "\n")
        return oracle3d.agreement(run / "log.jsonl")

    same, reverse = log(np.array([10.0, 20.0, 30.0, 40.0])), log(np.array([40.0, 30.0, 20.0, 10.0]))
    assert same["steps"] == 1 and same["clip_contrast"] == same["oracle_contrast"] > 0 and same["top1"] == 1
    assert reverse["clip_contrast"] == -reverse["oracle_contrast"] and reverse["top1"] == 0
