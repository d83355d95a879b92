"""DESIGN section 4, rung 3: the diffusers adapter end to end on tiny random components, saved and
loaded back offline through the same `from_pretrained` users call."""

import importlib.util

import pytest
import torch

from rewardsds.loop import LoopConfig, run
from rewardsds.losses import GuidanceConfig, build_guidance
from rewardsds.priors.diffusers_prior import DiffusersPrior, PriorLoadError
from rewardsds.representations.image import init_image
from rewardsds.rewards import CallableReward


def _redness(images, prompts):
    return images[:, 0].mean((1, 2)) - images[:, 1:].mean((1, 2, 3))


def test_latent_prior_loads_and_round_trips_shapes(tiny_sd_dir):
    prior = DiffusersPrior.from_pretrained(tiny_sd_dir)
    assert prior.vae is not None and prior.sample_shape == (4, 8, 8) and prior.image_size == 16
    img = torch.rand(2, 3, 16, 16)
    z = prior.encode(img)
    assert z.shape == (2, 4, 8, 8)
    out = prior.decode(z)
    assert out.shape == (2, 3, 16, 16) and out.min() >= 0 and out.max() <= 1
    emb = prior.embed(["a red circle", "a blue square"])
    assert emb.cond.shape == (2, 16, 32) and not torch.allclose(emb.cond, emb.uncond)
    pred = prior.predict_eps(prior.add_noise(z, torch.randn_like(z), torch.tensor([500, 500])),
                             torch.tensor(500), emb)
    assert pred.cond.shape == z.shape and not torch.allclose(pred.cond, pred.uncond)


def test_text_embeddings_are_cached(tiny_sd_dir):
    prior = DiffusersPrior.from_pretrained(tiny_sd_dir)
    calls = []
    real = prior._embed
    prior._embed = lambda p: calls.append(p) or real(p)
    prior.embed(["a red circle"])
    prior.embed(["a red circle", "a red circle"])
    assert len(calls) == 1


def test_v_prediction_is_converted_to_epsilon(tiny_pixel_dir):
    prior = DiffusersPrior.from_pretrained(tiny_pixel_dir)
    assert prior.vae is None and prior.prediction_type == "v_prediction" and prior.sample_shape == (3, 8, 8)
    x_t, t = torch.randn(1, 3, 8, 8), torch.tensor([300])
    emb = prior.embed(["a red circle"])
    v = prior.unet(torch.cat([x_t, x_t]), torch.cat([t, t]),
                   encoder_hidden_states=torch.cat([emb.cond, emb.uncond])).sample
    a = prior.alphas_cumprod[300]
    assert torch.allclose(prior.predict_eps(x_t, t, emb).cond, a.sqrt() * v[:1] + (1 - a).sqrt() * x_t, atol=1e-5)


@pytest.mark.parametrize("method", ["reward-sds", "reward-vsd", "reward-bridge"])
def test_reward_methods_run_end_to_end_on_a_latent_prior(tiny_sd_dir, method):
    prior = DiffusersPrior.from_pretrained(tiny_sd_dir)
    g = build_guidance(GuidanceConfig(method=method, n_noises=3, denoise_steps=2, cfg=7.5), prior,
                       CallableReward(_redness))
    gen = torch.Generator().manual_seed(0)
    x0 = init_image(prior, "colour", 1, gen, colour=(0.5, 0.5, 0.5))
    res = run(g, ["a red circle"], x0, LoopConfig(steps=2, lr=0.01, frame_every=1), gen, progress=False)
    assert res.images.shape == (1, 3, 16, 16) and res.prior_calls == 4 and torch.isfinite(res.x0).all()


def test_reward_dds_edits_on_a_latent_prior(tiny_sd_dir):
    prior = DiffusersPrior.from_pretrained(tiny_sd_dir)
    src = prior.encode(torch.rand(1, 3, 16, 16))
    g = build_guidance(GuidanceConfig(method="reward-dds", n_noises=2, cfg=7.5), prior, CallableReward(_redness),
                       source=src, source_prompts=["a red circle"])
    res = run(g, ["a blue circle"], src.clone(), LoopConfig(steps=2, lr=0.05, frame_every=0),
              torch.Generator().manual_seed(0), progress=False)
    assert res.prior_calls == 2 and not torch.allclose(res.x0, src)


def test_missing_hub_model_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PriorLoadError, match="not a local folder, not in the Hugging Face cache.*offline"):
        DiffusersPrior.from_pretrained("nobody/no-such-model-xyz")


@pytest.mark.parametrize("lora_rank", [
    0, pytest.param(4, marks=pytest.mark.skipif(importlib.util.find_spec("peft") is None,
                                                reason="peft is not installed (pip install 'rewardsds[lora]')"))])
def test_reward_vsd_resumed_equals_uninterrupted_on_a_latent_prior(tmp_path, tiny_sd_dir, lora_rank):
    """RewardVSD on the tiny Stable Diffusion prior, particle model a LoRA (the SD default) or a full copy:
    stopped after its step-2 checkpoint and resumed, it ends bit-equal to the uninterrupted run, particle
    model included (LoRA weights, their AdamW state and the particle's own generator)."""
    prior = DiffusersPrior.from_pretrained(tiny_sd_dir)

    def go(out, steps, resume=False):
        g = build_guidance(GuidanceConfig(method="reward-vsd", n_noises=3, cfg=7.5, preview_cfg=1.0,
                                          vsd_lora_rank=lora_rank), prior, CallableReward(_redness),
                           generator_seed=7)
        gen = torch.Generator().manual_seed(1)
        x0 = init_image(prior, "noise", 1, gen)
        res = run(g, ["a red circle"], x0, LoopConfig(steps=steps, lr=0.01, frame_every=0, checkpoint_every=2),
                  gen if not resume else torch.Generator().manual_seed(99), out_dir=out, resume=resume,
                  progress=False)
        return res, g.state_dict()["particle"]["net"]

    want, want_net = go(tmp_path / "a", 4)
    go(tmp_path / "b", 2)  # "killed" after its step-2 checkpoint ...
    got, got_net = go(tmp_path / "b", 4, resume=True)  # ... resumed with another generator: the state wins
    assert torch.equal(want.x0, got.x0), (want.x0 - got.x0).abs().max()
    assert want.prior_calls == got.prior_calls
    assert want_net.keys() == got_net.keys() and all(torch.equal(want_net[k], got_net[k]) for k in want_net)
    if lora_rank:
        assert want_net and all("lora" in k for k in want_net)
