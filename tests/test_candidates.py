import pytest
import torch

from rewardsds.candidates import Candidates, ddim_grid, noise_candidates, preview, x0_from_eps
from rewardsds.priors.analytic import GaussianPrior
from rewardsds.priors.base import EpsPrediction, eps_from_output


def _prior():
    return GaussianPrior({"red": (0.9, 0.1, 0.1)}, std=0.2, size=4)


def test_ddim_grid_starts_at_t():
    assert ddim_grid(800, 4) == [800, 600, 400, 200]
    assert ddim_grid(500, 1) == [500]
    g = ddim_grid(3, 10)
    assert g[0] == 3 and g == sorted(set(g), reverse=True)


def test_one_step_preview_is_the_exact_x0_prediction():
    prior = _prior()
    emb = prior.embed(["red"])
    x0 = torch.rand(1, 3, 4, 4) * 2 - 1
    c = noise_candidates(prior, x0, emb, 600, 5, torch.Generator().manual_seed(0))
    assert prior.calls == 1 and c.x_t.shape == (5, 3, 4, 4)
    x0_hat, extra = preview(prior, c, emb.repeat(5), 1, 7.5)
    a = prior.alphas_cumprod[600]
    assert extra == 0
    assert torch.allclose(x0_hat, (c.x_t - (1 - a).sqrt() * c.pred.guided(7.5)) / a.sqrt(), atol=1e-5)


def test_candidates_share_t_and_use_different_noises():
    prior = _prior()
    c = noise_candidates(prior, torch.zeros(2, 3, 4, 4), prior.embed(["red", "red"]), 300, 3,
                         torch.Generator().manual_seed(1))
    assert c.t == 300 and c.eps.shape == (6, 3, 4, 4)
    assert not torch.allclose(c.eps[0], c.eps[1])


def test_multi_step_preview_matches_diffusers_ddim():
    from diffusers import DDIMScheduler

    prior = _prior()
    emb = prior.embed(["red"])
    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=False,
                          set_alpha_to_one=True, prediction_type="epsilon", timestep_spacing="leading")
    assert torch.allclose(sched.alphas_cumprod.float(), prior.alphas_cumprod, atol=1e-6)
    sched.set_timesteps(5)  # leading spacing: 800, 600, 400, 200, 0 -> steps of 200
    x_t = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    t = 800
    pred = prior.predict_eps(x_t, torch.tensor([t]), emb)
    ours, extra = preview(prior, Candidates(t, x_t, x_t, pred), emb, 4, 3.0)
    assert extra == 3
    x = x_t
    for tau in (800, 600, 400, 200):
        eps = prior.predict_eps(x, torch.tensor([tau]), emb).guided(3.0)
        step = sched.step(eps, tau, x, eta=0.0)
        x = step.prev_sample
    assert torch.allclose(ours, step.pred_original_sample, atol=1e-4)


@pytest.mark.parametrize("ptype", ["epsilon", "v_prediction", "sample"])
def test_eps_from_output_round_trips(ptype):
    a = torch.tensor([0.3, 0.7])
    x0, eps = torch.randn(2, 3, 2, 2), torch.randn(2, 3, 2, 2)
    x_t = a.sqrt().view(-1, 1, 1, 1) * x0 + (1 - a).sqrt().view(-1, 1, 1, 1) * eps
    out = {"epsilon": eps, "v_prediction": a.sqrt().view(-1, 1, 1, 1) * eps - (1 - a).sqrt().view(-1, 1, 1, 1) * x0,
           "sample": x0}[ptype]
    assert torch.allclose(eps_from_output(out, x_t, a, ptype), eps, atol=1e-5)
    assert torch.allclose(x0_from_eps(x_t, eps, a), x0, atol=1e-5)


def test_guided_combines_without_a_new_call():
    p = EpsPrediction(torch.ones(1), torch.zeros(1))
    assert p.guided(7.5).item() == 7.5 and p.guided(1.0).item() == 1.0


@pytest.mark.parametrize("method,n", [("reward-sds", 3), ("sds", 1)])
def test_views_of_one_object_get_independent_noises_and_shared_weights(method, n):
    """3D: candidate i is a SET of per-view noises (DreamFusion, threestudio, the official code);
    its reward is the mean over its views and its weight is shared by them."""
    from rewardsds.losses import GuidanceConfig, build_guidance
    from rewardsds.rewards import CallableReward

    prior = _prior()
    seen = []
    add_noise = prior.add_noise

    def spy(x0, eps, t):
        seen.append(eps.clone())
        return add_noise(x0, eps, t)

    prior.add_noise = spy
    reward = CallableReward(lambda im, _: im.mean((1, 2, 3)), "brightness")
    g = build_guidance(GuidanceConfig(method=method, cfg=5.0, preview_cfg=1.0, n_noises=n), prior, reward)
    v = 3
    out = g(torch.zeros(v, 3, 4, 4), ["red"] * v, 400, True, torch.Generator().manual_seed(0), shared=True)
    eps = seen[-1].view(v, n, 3, 4, 4)  # row b*N + i: view b, candidate i
    for i in range(n):
        for b in range(1, v):
            assert not torch.allclose(eps[0, i], eps[b, i]), (i, b)
    if n > 1:
        assert out.rewards.shape == (v, n) and out.weights.shape == (v, n)
        assert torch.equal(out.weights, out.weights[:1].expand(v, n))  # one weight per candidate, all views
        assert not torch.equal(out.rewards, out.rewards[:1].expand(v, n))  # the views' own rewards differ
