"""DESIGN section 4, rung 2: on Gaussian data the ideal denoiser is exact, so the maths can be checked."""

import pytest
import torch

from rewardsds.loop import LoopConfig, run
from rewardsds.losses import GuidanceConfig, build_guidance
from rewardsds.priors.analytic import GaussianPrior
from rewardsds.representations.image import init_image
from rewardsds.rewards import CallableReward

MU = torch.tensor([0.9, 0.1, 0.1])
TARGET = torch.tensor([0.9, 0.1, 0.6]).view(1, 3, 1, 1)


def _reward():
    return CallableReward(lambda im, p: -(im - TARGET).pow(2).mean((1, 2, 3)), "towards-c")


def _final(method, seed, prior, steps=300, **kw):
    g = build_guidance(GuidanceConfig(method=method, cfg=1.0, preview_cfg=1.0, n_noises=8, **kw), prior, _reward())
    gen = torch.Generator().manual_seed(seed)
    x0 = init_image(prior, "colour", 1, gen, colour=(0.5, 0.5, 0.5))
    return run(g, ["red"], x0, LoopConfig(steps=steps, lr=0.02, frame_every=0), gen, progress=False)


def test_sds_converges_to_the_known_mean():
    prior = GaussianPrior({"red": tuple(MU.tolist())}, std=0.1, size=4)
    res = _final("sds", 0, prior)
    assert torch.allclose(res.images.mean((0, 2, 3)), MU, atol=0.02)


def test_reward_sds_moves_towards_the_rewarded_colour():
    prior = GaussianPrior({"red": tuple(MU.tolist())}, std=0.25, size=4)
    dist = {}
    for method in ("sds", "reward-sds"):
        finals = torch.stack([_final(method, s, prior).images.mean((0, 2, 3)) for s in range(3)])
        dist[method] = float((finals.mean(0) - TARGET.flatten()).norm())
    assert dist["reward-sds"] < dist["sds"] - 0.02, dist


def test_one_prior_call_per_step_when_s_is_1():
    prior = GaussianPrior({"red": tuple(MU.tolist())}, std=0.1, size=4)
    res = _final("reward-sds", 0, prior, steps=5)
    assert prior.calls == 5 and res.prior_calls == 5


@pytest.mark.parametrize("method", ["sds", "reward-sds", "vsd", "reward-vsd", "bridge", "reward-bridge"])
def test_every_method_runs_and_stays_finite(method):
    prior = GaussianPrior({"red": tuple(MU.tolist())}, std=0.1, size=4)
    res = _final(method, 0, prior, steps=6)
    assert torch.isfinite(res.x0).all() and res.skipped_steps == 0


def test_dds_edit_moves_source_towards_target():
    prior = GaussianPrior({"red": (0.9, 0.1, 0.1), "blue": (0.1, 0.1, 0.9)}, std=0.1, size=4)
    src = prior.encode(torch.full((1, 3, 4, 4), 0.0) + torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1))
    for method in ("dds", "reward-dds"):
        g = build_guidance(GuidanceConfig(method=method, cfg=1.0, preview_cfg=1.0, n_noises=4), prior,
                           _reward(), source=src, source_prompts=["red"])
        res = run(g, ["blue"], src.clone(), LoopConfig(steps=150, lr=0.02, frame_every=0),
                  torch.Generator().manual_seed(0), progress=False)
        rgb = res.images.mean((0, 2, 3))
        assert rgb[2] > 0.6 and rgb[0] < 0.4, (method, rgb)


def test_non_finite_gradients_are_skipped_not_applied():
    prior = GaussianPrior({"red": tuple(MU.tolist())}, std=0.1, size=4)
    bad = CallableReward(lambda im, p: torch.zeros(im.shape[0]))
    g = build_guidance(GuidanceConfig(method="sds", cfg=1.0), prior, bad)
    real = prior.predict_eps
    prior.predict_eps = lambda *a: type(real(*a))(real(*a).cond * float("nan"), real(*a).uncond)
    x0 = torch.zeros(1, 3, 4, 4)
    res = run(g, ["red"], x0, LoopConfig(steps=3, lr=0.1, frame_every=0), torch.Generator(), progress=False)
    assert res.skipped_steps == 3 and torch.equal(res.x0, x0)


def test_resume_continues_exactly(tmp_path):
    prior = GaussianPrior({"red": tuple(MU.tolist())}, std=0.25, size=4)
    cfg = LoopConfig(steps=8, lr=0.02, frame_every=2, checkpoint_every=4)

    def go(out, steps_cfg, resume=False):
        g = build_guidance(GuidanceConfig(method="reward-sds", cfg=1.0, n_noises=4), prior, _reward())
        gen = torch.Generator().manual_seed(0)
        x0 = init_image(prior, "colour", 1, gen)
        return run(g, ["red"], x0, steps_cfg, gen, out_dir=out, resume=resume, progress=False)

    full = go(tmp_path / "a", cfg)
    # a run killed after its step-4 checkpoint, then resumed
    import dataclasses

    go(tmp_path / "b", dataclasses.replace(cfg, steps=4))
    resumed = go(tmp_path / "b", cfg, resume=True)
    assert torch.allclose(full.x0, resumed.x0, atol=1e-6)
    lines = (tmp_path / "b" / "log.jsonl").read_text().splitlines()
    assert len(lines) == 8 and len(resumed.frames) == len(full.frames)


def test_the_reward_reads_reward_prompts_and_the_prior_its_own():
    """A camera-reading prior's views keep the plain prompt while a view-aware reward reads each view's
    suffix: the reward gets `reward_prompts` (one per candidate row), the prior's embedding never does."""
    prior = GaussianPrior({"red": tuple(MU.tolist())}, std=0.1, size=4)
    seen = []
    reward = CallableReward(lambda im, p: seen.extend(p) or torch.zeros(im.shape[0]), "records")
    g = build_guidance(GuidanceConfig(method="reward-sds", cfg=1.0, n_noises=3), prior, reward)
    x0 = torch.zeros(2, 3, 4, 4)
    g(x0, ["red", "red"], 500, True, torch.Generator().manual_seed(0), shared=True,
      reward_prompts=["red, front view", "red, back view"])
    assert sorted(set(seen)) == ["red, back view", "red, front view"] and len(seen) == 6  # 2 views x 3
    seen.clear()
    g(x0, ["red", "red"], 500, True, torch.Generator().manual_seed(0), shared=True)
    assert set(seen) == {"red"}  # None: the prior's prompts
    with pytest.raises(ValueError, match="1 reward prompts for 2 rows"):
        g(x0, ["red", "red"], 500, True, torch.Generator().manual_seed(0), reward_prompts=["red, front view"])
