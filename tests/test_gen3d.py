"""The text-to-3D loop end to end on the analytic Gaussian prior (16 px renders, tiny field)."""

import json

import pytest
import torch

from rewardsds.checkpoints import load_state
from rewardsds.gen3d import Gen3DConfig, load_field, render_resolution, resolve3d, save_outputs, train
from rewardsds.losses import GuidanceConfig, build_guidance
from rewardsds.priors.analytic import GaussianPrior
from rewardsds.render import CameraRanges, SolidBackground, VolumeRenderer, orbit_cameras
from rewardsds.representations.field import FieldConfig, RadianceField
from rewardsds.rewards import CallableReward

PROMPT = "a red ball"


def tiny(tmp_path, **kw) -> Gen3DConfig:
    base = dict(prompt=PROMPT, out=tmp_path, steps=2, lr=0.05, cfg=20.0, views=2, render_resolutions=(16,),
                n_samples=12, grid=FieldConfig(resolutions=(8, 16), features=2, hidden=16),
                cameras=CameraRanges(elevation=(0, 30)), video_resolution=16, video_frames=3,
                mesh_resolution=16, checkpoint_every=1, progress=False)
    return Gen3DConfig(**{**base, **kw})


def prior() -> GaussianPrior:
    return GaussianPrior({PROMPT: (0.9, 0.1, 0.1)}, size=16)


def sds(p, **kw):
    return build_guidance(GuidanceConfig(method="sds", cfg=20.0, **kw), p)


def test_two_steps_write_every_output(tmp_path):
    cfg = tiny(tmp_path)
    p = prior()
    result = train(cfg, sds(p), torch.Generator().manual_seed(0), out_dir=tmp_path, progress=False)
    assert result.steps_done == 2 and result.skipped_steps == 0 and result.prior_calls == 2 == p.calls
    files = save_outputs(resolve3d(cfg), result, tmp_path)
    assert set(files) == {"field", "turntable", "views", "obj", "glb"}
    for name in ("checkpoint.safetensors", "log.jsonl", "field.safetensors", "views.png", "mesh.obj", "mesh.glb"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert files["turntable"].suffix in (".mp4", ".gif") and files["turntable"].exists()
    log = [json.loads(ln) for ln in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1] and all(r["resolution"] == 16 for r in log)
    assert log[0]["prompts"] == [PROMPT]  # the world-prior defaults: no view suffixes
    field, renderer = load_field(tmp_path / "field.safetensors")
    pts = torch.rand(32, 3) * 2 - 1
    assert torch.allclose(field(pts)[0], result.field(pts)[0])


def test_resume_continues_from_the_checkpoint(tmp_path):
    kw = dict(t_anneal_steps=4, reward_steps=0.0)
    full = train(tiny(tmp_path / "a", steps=4, **kw), sds(prior()), torch.Generator().manual_seed(3),
                 out_dir=tmp_path / "a", progress=False)
    # the same run, stopped after 2 steps and resumed from its checkpoint for the other 2
    b = tmp_path / "b"
    train(tiny(b, steps=2, **kw), sds(prior()), torch.Generator().manual_seed(3), out_dir=b, progress=False)
    ckpt, _ = load_state(b / "checkpoint.safetensors")
    assert ckpt["step"] == 2
    resumed = train(tiny(b, steps=4, **kw), sds(prior()), torch.Generator().manual_seed(99), out_dir=b,
                    resume=True, progress=False)
    want, got = full.field.state_dict(), resumed.field.state_dict()
    for name, x in want.items():
        assert torch.allclose(x, got[name], atol=1e-6), name
    steps = [json.loads(ln)["step"] for ln in (b / "log.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3]
    assert resumed.prior_calls == full.prior_calls == 4


def test_reward_steps_share_weights_across_views(tmp_path):
    redness = CallableReward(lambda im, _: im[:, 0].mean((1, 2)) - im[:, 1:].mean((1, 2, 3)), "redness")
    p = prior()
    g = build_guidance(GuidanceConfig(method="reward-sds", cfg=20.0, n_noises=3), p, redness)
    cfg = tiny(tmp_path, steps=4, reward_steps=0.5, view_dependent=True, background="random")
    res = train(cfg, g, torch.Generator().manual_seed(0), out_dir=tmp_path, progress=False)
    log = [json.loads(ln) for ln in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["reward_step"] for r in log] == [True, True, False, False]
    assert len(log[0]["rewards"]) == 2 and len(log[0]["rewards"][0]) == 3  # [V, N]
    assert log[2]["rewards"] is None and res.prior_calls == 4
    assert any(s.endswith(" view") for s in log[0]["prompts"])


def test_sds_turns_the_object_towards_the_prompt_colour(tmp_path):
    cfg = tiny(tmp_path, steps=12, lr=0.05, views=2)
    res = train(cfg, sds(prior()), torch.Generator().manual_seed(0), progress=False)
    start = RadianceField(cfg.grid, generator=torch.Generator().manual_seed(0))  # train's initial field
    r = VolumeRenderer(res.renderer.sampler, SolidBackground((0, 0, 0)))
    front = orbit_cameras(15.0, 0.0, 2.75, 50.0)
    with torch.no_grad():
        before, after = (r(f, front, 16, 16).foreground for f in (start, res.field))
    redness = lambda x: float((x[:, 0] - x[:, 1:].mean(1)).sum())  # noqa: E731
    assert redness(after) > redness(before) + 1.0


def test_resolution_schedule_and_validation(tmp_path):
    assert [render_resolution(s, 10, (32, 64, 128), (0.3, 0.6)) for s in (0, 2, 3, 5, 6, 9)] == \
        [32, 32, 64, 64, 128, 128]
    cfg = resolve3d(Gen3DConfig(prompt="x", prior="sd21"))
    # the bounds anneal over 80% of the run (MVDream: 8000 of 10000 steps; was: the whole run)
    assert cfg.view_dependent and cfg.background == "learned" and cfg.t_anneal_steps == 0.8 * cfg.steps
    world = resolve3d(Gen3DConfig(prompt="x"))
    assert not world.view_dependent and world.views == 4 and world.render_resolutions == (32,)
    assert world.cfg == 20.0  # a field keeps SDS's CFG 20 on the world (2D distils at 7.5 from samples)
    assert cfg.x0_recon and not world.x0_recon  # the official 3D loss form for latent priors only
    # a retrained world prior in its own folder is recognised by its model_index.json, not its name
    (tmp_path / "my_world").mkdir()
    (tmp_path / "my_world" / "model_index.json").write_text('{"_class_name": "RewardSDSWorldPrior"}')
    (tmp_path / "my_sd").mkdir()
    (tmp_path / "my_sd" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    mine = resolve3d(Gen3DConfig(prompt="x", prior=str(tmp_path / "my_world")))
    assert (mine.views, mine.steps, mine.cfg) == (world.views, world.steps, world.cfg)
    assert resolve3d(Gen3DConfig(prompt="x", prior=str(tmp_path / "my_sd"))).cfg == cfg.cfg == 100.0
    with pytest.raises(ValueError, match="milestones"):
        resolve3d(Gen3DConfig(prompt="x", render_resolutions=(32, 64)))
    with pytest.raises(ValueError, match="DDS"):
        resolve3d(Gen3DConfig(prompt="x", method="reward-dds"))


def test_command_end_to_end(tmp_path, monkeypatch):
    import rewardsds.commands.common as common
    from rewardsds.gen3d import run_gen3d

    monkeypatch.setattr(common, "load_prior", lambda spec, device: (prior(), "analytic"))
    cfg = tiny(tmp_path / "run", method="sds", device="cpu", checkpoint_every=100)
    summary = run_gen3d(cfg)
    out = tmp_path / "run"
    assert summary["steps"] == 2 and summary["out"] == str(out)
    saved = json.loads((out / "summary.json").read_text())
    assert set(saved["files"]) == {"field", "turntable", "views", "obj", "glb"}
    assert json.loads((out / "config.json").read_text())["prompt"] == PROMPT


def test_rejects_bad_schedules():
    with pytest.raises(ValueError, match="anneal_to"):
        resolve3d(Gen3DConfig(prompt="x", t_max=0.4))
    with pytest.raises(ValueError, match="reward_steps"):
        resolve3d(Gen3DConfig(prompt="x", steps=10, reward_steps=20))


def _recon_guidance(p, rescale, method="sds", n=1):
    cfg = GuidanceConfig(method=method, cfg=7.0, n_noises=n, x0_recon=True, recon_std_rescale=rescale)
    return build_guidance(cfg, p, CallableReward(lambda im, _: im.mean((1, 2, 3)), "brightness"))


def test_x0_recon_without_rescale_is_sds_with_another_time_weight():
    p, t = prior(), 600
    x0 = torch.rand(2, 3, 16, 16) * 2 - 1
    kw = dict(shared=True)
    eps_form = build_guidance(GuidanceConfig(method="sds", cfg=7.0), p)(x0, [PROMPT] * 2, t, None,
                                                                        torch.Generator().manual_seed(4), **kw)
    recon = _recon_guidance(p, 0.0)(x0, [PROMPT] * 2, t, None, torch.Generator().manual_seed(4), **kw)
    a = p.alphas_cumprod[t]
    # x0 - x0_hat(eps_hat) = sqrt((1-a)/a) (eps_hat - eps); the eps form carries w(t) = 1 - a
    assert torch.allclose(recon.grad, eps_form.grad * ((1 - a) / a).sqrt() / (1 - a), atol=1e-4)


def test_x0_recon_matches_threestudio_std_rescale_and_loss():
    """threestudio MVDream `recon_loss`: x0_target = x0(eps_cfg), factor = std(x0(eps_cond)) /
    std(x0(eps_cfg)) over the views of one object, target = 0.5 * factor * x0 + 0.5 * x0, loss =
    0.5 * mse(latents, target, sum) / B."""
    p, t, v, n = prior(), 500, 3, 4
    x0 = (torch.rand(v, 3, 16, 16) * 2 - 1).requires_grad_(True)
    g = _recon_guidance(p, 0.5, "reward-sds", n)
    seen = []
    predict = p.predict_eps
    p.predict_eps = lambda x_t, tt, emb: seen.append((x_t, tt)) or seen.append(predict(x_t, tt, emb)) or seen[-1]
    out = g(x0, [PROMPT] * v, t, True, torch.Generator().manual_seed(0), shared=True)
    (x_t, _), pred = seen[0], seen[1]
    a = p.alphas_cumprod[t]
    to_x0 = lambda e: (x_t - (1 - a).sqrt() * e) / a.sqrt()  # noqa: E731
    cfg_x0, cond_x0 = to_x0(pred.guided(7.0)).view(v, n, -1), to_x0(pred.cond).view(v, n, -1)
    want = torch.zeros_like(x0)
    for i in range(n):  # object i = its V views (rows b*N + i)
        factor = (cond_x0[:, i].std() + 1e-8) / (cfg_x0[:, i].std() + 1e-8)
        target = (0.5 * factor * cfg_x0[:, i] + 0.5 * cfg_x0[:, i]).view(v, 3, 16, 16)
        loss = 0.5 * torch.nn.functional.mse_loss(x0, target, reduction="sum") / v
        want += out.weights[0, i] * torch.autograd.grad(loss, x0)[0]
    assert torch.allclose(out.grad / v, want, atol=1e-5)
    (got,) = torch.autograd.grad(out.loss, x0)
    assert torch.allclose(got, want, atol=1e-5)


def test_x0_recon_is_an_sds_option():
    with pytest.raises(ValueError, match="x0_recon"):
        GuidanceConfig(method="reward-vsd", x0_recon=True)
    with pytest.raises(ValueError, match="recon_std_rescale"):
        GuidanceConfig(x0_recon=True, recon_std_rescale=1.5)
    assert not resolve3d(Gen3DConfig(prompt="x", prior="sd21", method="reward-vsd", vsd_lora_rank=0)).x0_recon
    assert not GuidanceConfig().x0_recon
