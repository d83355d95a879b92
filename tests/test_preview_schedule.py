"""The paper's preview schedule ("global"): the S-step grid over [0, T], entered at t itself, so a
small t costs few prior calls; against closed forms and the "from-t" preview (checked against
diffusers' DDIM in test_candidates)."""

import json

import pytest
import torch

from rewardsds.candidates import Candidates, global_grid, noise_candidates, preview, preview_grid, x0_from_eps
from rewardsds.loop import LoopConfig, run
from rewardsds.losses import GuidanceConfig, build_guidance
from rewardsds.priors.analytic import GaussianPrior
from rewardsds.representations.image import init_image
from rewardsds.rewards import CallableReward


def _prior():
    return GaussianPrior({"red": (0.9, 0.1, 0.1)}, std=0.2, size=4)


def _redness():
    return CallableReward(lambda im, _: im[:, 0].mean((1, 2)) - im[:, 1:].mean((1, 2, 3)), "redness")


def test_global_grid_closed_form():
    T, S = 1000, 15
    points = [round(k * T / S) for k in range(1, S)]  # 67, 133, ..., 933 (0 is the clean end)
    assert global_grid(500, S, T) == [500, 467, 400, 333, 267, 200, 133, 67]
    for t in (0, 1, 20, 66, 67, 68, 500, 933, 934, 979, 999):
        below = sorted((p for p in points if p < t), reverse=True)
        assert preview_grid(t, S, "global", T) == [t, *below], t
    assert global_grid(50, 15, 1000) == [50]  # a small t: the shared call only
    assert global_grid(999, 15, 1000) == [999, *sorted(points, reverse=True)]  # t near T: S calls
    assert global_grid(700, 1, 1000) == [700]  # S = 1: the exact x0 prediction either way
    assert preview_grid(500, 15, "from-t") == [round(500 * (15 - i) / 15) for i in range(15)]
    # the official range t in [20, 980]: 8 calls on average (from-t: always S = 15)
    mean = sum(len(global_grid(t, S, T)) for t in range(20, 981)) / 961
    assert 7.5 < mean < 8.5
    with pytest.raises(ValueError, match="preview schedule"):
        preview_grid(500, 15, "nearest")


def test_global_preview_calls_and_exact_x0_at_the_end():
    prior = _prior()
    emb = prior.embed(["red"])
    t, S, cfg = 500, 15, 3.0
    c = noise_candidates(prior, torch.rand(2, 3, 4, 4) * 2 - 1, emb, t, 1, torch.Generator().manual_seed(0))
    calls0 = prior.calls
    ours, extra = preview(prior, c, emb.repeat(1), S, cfg, schedule="global")
    assert extra == 7 == prior.calls - calls0  # 467, 400, 333, 267, 200, 133, 67
    # the same chain by hand: DDIM (eta = 0) through 500 -> 467 -> ... -> 67, then x0 at 67
    ac, x = prior.alphas_cumprod, c.x_t
    grid = [500, 467, 400, 333, 267, 200, 133, 67]
    for i, tau in enumerate(grid):
        eps = prior.predict_eps(x, torch.tensor([tau]), emb.repeat(2)).guided(cfg)
        x0 = (x - (1 - ac[tau]).sqrt() * eps) / ac[tau].sqrt()
        if i + 1 < len(grid):
            x = ac[grid[i + 1]].sqrt() * x0 + (1 - ac[grid[i + 1]]).sqrt() * eps
    assert torch.allclose(ours, x0, atol=1e-5)


def test_global_equals_from_t_when_t_is_a_grid_point():
    # t = 600 on the 5-step grid (200, 400, 600, 800): global = [600, 400, 200] = from-t with S = 3
    prior = _prior()
    emb = prior.embed(["red"])
    x_t = torch.randn(3, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    pred = prior.predict_eps(x_t, torch.tensor([600]), emb.repeat(3))
    c = Candidates(600, x_t, x_t, pred)
    g, eg = preview(prior, c, emb.repeat(3), 5, 2.0, schedule="global")
    f, ef = preview(prior, c, emb.repeat(3), 3, 2.0, schedule="from-t")
    assert eg == ef == 2 and torch.allclose(g, f, atol=1e-6)
    one, e1 = preview(prior, c, emb.repeat(3), 1, 2.0, schedule="global")
    assert e1 == 0 and torch.allclose(one, x0_from_eps(x_t, pred.guided(2.0), prior.alphas_cumprod[600].expand(3)))


def test_guidance_counts_preview_calls_in_the_log(tmp_path):
    prior = _prior()
    g = build_guidance(GuidanceConfig(method="reward-sds", cfg=1.0, n_noises=4, denoise_steps=15,
                                      preview_schedule="global"), prior, _redness())
    out = g(torch.zeros(1, 3, 4, 4), ["red"], 500, True, torch.Generator().manual_seed(0))
    assert out.prior_calls == 8 == prior.calls
    gen = torch.Generator().manual_seed(0)
    x0 = init_image(prior, "colour", 1, gen, colour=(0.5, 0.5, 0.5))
    res = run(g, ["red"], x0, LoopConfig(steps=6, reward_steps=0.5, frame_every=0), gen, out_dir=tmp_path,
              progress=False)
    log = [json.loads(ln) for ln in (tmp_path / "log.jsonl").read_text().splitlines()]
    want = [len(global_grid(r["t"], 15, 1000)) if r["reward_step"] else 1 for r in log]
    assert [r["prior_calls"] for r in log] == want and res.prior_calls == sum(want)
    assert [r["reward_step"] for r in log] == [True] * 3 + [False] * 3


def test_from_t_stays_the_default_and_unknown_schedules_are_refused():
    assert GuidanceConfig().preview_schedule == "from-t"
    with pytest.raises(ValueError, match="preview_schedule"):
        GuidanceConfig(preview_schedule="nearest")
