"""Reward-weighted initialisation (--init-samples): the best of n prior samples starts the distillation."""

import json

import numpy as np
import pytest
import torch

from rewardsds.cli import main
from rewardsds.config import GenerateConfig
from rewardsds.priors.analytic import GaussianPrior
from rewardsds.sampling import best_of_samples, sample
from rewardsds.sweep.runner import canonical_config
from rewardsds.world.scenes import sample_batch
from rewardsds.world.train.prior import PriorTrainConfig


def _prior():
    return GaussianPrior({"red": (0.9, 0.1, 0.1), "blue": (0.1, 0.1, 0.9)}, std=0.3, size=4)


def _blueness(images, prompts):
    return images[:, 2].mean((1, 2)) - images[:, 0].mean((1, 2))


def test_the_reward_picks_its_best_sample_per_prompt_and_no_reward_takes_the_first():
    prior, prompts, n = _prior(), ["red", "blue"], 5
    every = sample(prior, [p for p in prompts for _ in range(n)], 10, 4.0, torch.Generator().manual_seed(3))
    every = every.view(2, n, *every.shape[1:])
    scores_all = _blueness(every.flatten(0, 1), None).view(2, n)
    assert (scores_all.argmax(1) != 0).any()  # otherwise "first" and "best" could not be told apart

    picked, scores = best_of_samples(prior, prompts, n, _blueness, 10, 4.0, torch.Generator().manual_seed(3))
    torch.testing.assert_close(scores, scores_all)
    for b in range(2):
        torch.testing.assert_close(picked[b], every[b, int(scores_all[b].argmax())])
    first, none = best_of_samples(prior, prompts, n, None, 10, 4.0, torch.Generator().manual_seed(3))
    assert none is None
    torch.testing.assert_close(first, every[:, 0])
    with pytest.raises(ValueError, match="n must be"):
        best_of_samples(prior, prompts, 0)


def test_generate_starts_from_the_picked_sample(tmp_path, tiny_pixel_dir, capsys):
    out = tmp_path / "run"
    code = main(["generate", "a red circle", "--prior", str(tiny_pixel_dir), "--reward",
                 "tests.helpers.rewards:redness", "--steps", "2", "--init-samples", "3",
                 "--init-sample-steps", "2", "--out", str(out), "--no-progress"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    init = summary["init_samples"]
    assert init["n"] == 3 and init["picked_by"] == "reward" and len(init["rewards"][0]) == 3
    assert init["seconds"] > 0
    assert "start: init.png, the reward's pick of 3 prior samples" in capsys.readouterr().out
    assert (out / "init.png").exists() and (out / "init_raw.png").exists()


BAD_INIT = [(["--init-samples", "-1"], "--init-samples must"),
            (["--init-samples", "2", "--init-sample-steps", "0"], "--init-sample-steps must"),
            (["--init-samples", "2", "--init", "image"], "replaces --init")]


@pytest.mark.parametrize("extra,message", BAD_INIT)
def test_bad_init_samples_are_one_clear_error(tmp_path, tiny_pixel_dir, capsys, extra, message):
    code = main(["generate", "a red circle", "--prior", str(tiny_pixel_dir), "--steps", "2",
                 "--out", str(tmp_path / "r"), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_runs_without_init_samples_keep_their_sweep_identity():
    plain = canonical_config(GenerateConfig(prompt="a red circle", method="sds", init_samples=0))
    assert not any(k.startswith("init_sample") for k in plain)
    picked = canonical_config(GenerateConfig(prompt="a red circle", method="sds", init_samples=4))
    assert picked["init_samples"] == 4 and picked != plain


def test_the_world_starts_sds_from_samples_unless_a_start_is_given():
    """The world's defaults for the sds family: 4 sampled starts at CFG 7.5 (the runs made with these
    options spelled out keep their identity); an explicit --init or another method takes none."""
    default = canonical_config(GenerateConfig(prompt="a red circle", method="reward-sds"))
    spelled = canonical_config(GenerateConfig(prompt="a red circle", method="reward-sds", init_samples=4, cfg=7.5,
                                              init="colour"))
    assert default == spelled and default["init_samples"] == 4 and default["cfg"] == 7.5
    for kw in ({"init": "colour"}, {"init": "noise"}):
        assert "init_samples" not in canonical_config(GenerateConfig(prompt="a red circle", method="sds", **kw))
    assert "init_samples" not in canonical_config(GenerateConfig(prompt="a red circle", method="vsd"))
    before = canonical_config(GenerateConfig(prompt="a red circle", method="sds", init_samples=0, cfg=20.0))
    assert before["cfg"] == 20.0 and "init_samples" not in before


def test_two_object_share_of_the_2d_prior_data():
    _, _, scenes = sample_batch(5, 400, 8, two_objects=0.75)
    share = np.mean([len(s.objects) == 2 for s in scenes])
    assert 0.68 < share < 0.82
    assert all(len(s.objects) == 1 for s in sample_batch(5, 50, 8, two_objects=0.0)[2])
    a, b = sample_batch(7, 6, 8), sample_batch(7, 6, 8)  # the default mix draws as before: reproducible
    assert a[1] == b[1]
    with pytest.raises(ValueError, match="two_objects"):
        PriorTrainConfig(two_objects=1.5)
