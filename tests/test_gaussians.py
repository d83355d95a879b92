"""3D Gaussians as a gen3d representation: initialisation, densification with a consistent optimiser,
resume with a changed number of Gaussians, exports (.ply, mesh) and the command (2 steps, world prior)."""

import json
import math

import numpy as np
import pytest
import torch

from rewardsds.checkpoints import load_state
from rewardsds.export3d import PLY_PROPERTIES, _GaussianDensity, extract_mesh, load_ply, save_ply
from rewardsds.gen3d import Gen3DConfig, load_gaussians, load_scene, resolve3d, run_id3d, save_outputs, train
from rewardsds.loop import Interrupted
from rewardsds.losses import GuidanceConfig, build_guidance
from rewardsds.priors.analytic import GaussianPrior
from rewardsds.render import CameraRanges, SolidBackground, orbit_cameras
from rewardsds.render.splat import SplatRenderer
from rewardsds.representations.field_scene import ViewConfig
from rewardsds.representations.gaussians import PARAMS, GaussianConfig, GaussianModel, GaussianScene, knn_scale

PROMPT = "a red ball"


def tiny(tmp_path, **kw) -> Gen3DConfig:
    gs = kw.pop("gaussians", GaussianConfig(num_points=300, max_gaussians=600))
    base = dict(prompt=PROMPT, out=tmp_path, steps=2, lr=0.01, cfg=20.0, views=2, render_resolutions=(16,),
                representation="gaussians", gaussians=gs, cameras=CameraRanges(elevation=(0, 30)),
                video_resolution=16, video_frames=3, mesh_resolution=16, checkpoint_every=1, progress=False)
    return Gen3DConfig(**{**base, **kw})


def sds(p=None):
    p = p or GaussianPrior({PROMPT: (0.9, 0.1, 0.1)}, size=16)
    return build_guidance(GuidanceConfig(method="sds", cfg=20.0), p)


def test_initialisation_is_a_grey_ball_of_opacity_a_tenth():
    m = GaussianModel(GaussianConfig(num_points=2000), generator=torch.Generator().manual_seed(0))
    s = m.splats()
    assert len(m) == 2000 and m.means.norm(dim=-1).max() <= 0.5
    # uniform in the ball: the fraction inside radius 0.25 is (0.25 / 0.5)^3
    assert abs(float((m.means.norm(dim=-1) < 0.25).float().mean()) - 0.125) < 0.025
    assert torch.allclose(s.colors, torch.full_like(s.colors, 0.5)) and torch.allclose(s.opacities, torch.tensor(0.1))
    assert torch.allclose(s.scales[:, 0], knn_scale(m.means.detach())) and (s.scales.std(-1) == 0).all()
    # 3 nearest neighbours of a point on a unit lattice are at distance 1
    grid = torch.stack(torch.meshgrid(*[torch.arange(4.0)] * 3, indexing="ij"), -1).view(-1, 3)
    assert torch.allclose(knn_scale(grid), torch.ones(64))


def _scene(n=40, **kw) -> GaussianScene:
    cfg = GaussianConfig(num_points=n, max_gaussians=kw.pop("max_gaussians", 200), **kw)
    model = GaussianModel(cfg, generator=torch.Generator().manual_seed(1))
    return GaussianScene(model, SplatRenderer(backend="reference"), None, PROMPT, ViewConfig(), total_steps=10)


def _adam_step(scene, opt):
    loss = sum((getattr(scene.model, k) ** 2).sum() for k in PARAMS)
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_densify_clones_splits_prunes_and_edits_adam_in_place():
    scene = _scene(split_scale=0.08)
    m = scene.model
    with torch.no_grad():
        m.log_scales[:10] = math.log(0.05)  # small: cloned when hot
        m.log_scales[10:20] = math.log(0.2)  # large: split when hot
        m.log_scales[20:] = math.log(0.05)
        m.opacity_logits[30:35] = -6.0  # opacity 0.0025 < 0.01: pruned
        m.log_scales[35] = math.log(0.5)  # larger than prune_scale 0.4: pruned
    opt = torch.optim.Adam(scene.param_groups(0.01))
    _adam_step(scene, opt)
    before = {k: (getattr(m, k).detach().clone(), opt.state[getattr(m, k)]["exp_avg"].clone()) for k in PARAMS}
    scene.grad_accum[:20] = 1.0
    scene.grad_count[:] = 1.0
    counts = scene.densify_and_prune(opt, torch.Generator().manual_seed(0))
    assert counts == {"cloned": 10, "split": 10, "pruned": 6, "gaussians": 40 + 10 + 10 - 6}
    assert all(g["params"] == [getattr(m, g["name"])] for g in opt.param_groups)  # it holds the new Parameters
    assert len(opt.state) == len(PARAMS) and all(getattr(m, k) in opt.state for k in PARAMS)
    kept = torch.tensor([i for i in range(40) if not 10 <= i < 20 and not 30 <= i <= 35])
    for k in PARAMS:
        p, state = getattr(m, k), opt.state[getattr(m, k)]
        assert p.shape[0] == 54 and state["exp_avg"].shape == state["exp_avg_sq"].shape == p.shape
        assert torch.equal(p[:24], before[k][0][kept]) and torch.equal(state["exp_avg"][:24], before[k][1][kept])
        assert (state["exp_avg"][24:] == 0).all() and (state["exp_avg_sq"][24:] == 0).all()
    # clones copy their parents; split children have the parent's scale / 1.6 and sit near it
    assert torch.equal(m.means[24:34], before["means"][0][:10])
    assert torch.allclose(m.log_scales[34:], before["log_scales"][0][10:20].repeat(2, 1) - math.log(1.6))
    parents = before["means"][0][10:20].repeat(2, 1)
    assert ((m.means[34:] - parents).norm(dim=-1) < 4 * 0.2 * math.sqrt(3)).all()
    assert (scene.grad_accum == 0).all() and scene.grad_accum.shape == (54,)
    _adam_step(scene, opt)  # the optimiser steps on the new sizes
    # the cap: with room for 3 more, only the 3 largest gradients densify
    capped = _scene(max_gaussians=43)
    opt = torch.optim.Adam(capped.param_groups(0.01))
    _adam_step(capped, opt)
    capped.grad_accum[:] = torch.arange(40.0)
    capped.grad_count[:] = 1.0
    assert capped.densify_and_prune(opt, torch.Generator())["gaussians"] <= 43


def test_position_learning_rate_decays_log_linearly():
    scene = _scene()
    opt = torch.optim.Adam(scene.param_groups(0.01))
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == pytest.approx({"means": 1e-3, "sh_dc": 1e-2, "opacity_logits": 5e-2, "log_scales": 5e-3,
                                 "quats": 5e-3})  # DreamGaussian's configs/text.yaml at --lr 0.01
    for step in range(10):
        scene.after_step(step, opt)
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-5)  # the final rate after 60% of the run
    assert scene.means_lr(3, 0.01) == pytest.approx(1e-3 * (2e-5 / 1e-3) ** 0.5)


def test_resume_with_a_changed_number_of_gaussians(tmp_path):
    """Densification every step (threshold 0) changes N; a 4-step run killed during its step 3 (its last
    checkpoint: after step 2) and resumed ends exactly where the uninterrupted run does. (Killed rather than
    run for 2 steps: the position learning rate and the densification window depend on --steps.)"""
    gs = GaussianConfig(num_points=200, max_gaussians=1000, densify_every=1, densify_until=1.0, grad_threshold=0.0,
                        prune_opacity=0.09)
    cfg = dict(steps=4, t_anneal_steps=4, reward_steps=0.0, gaussians=gs)
    full = train(tiny(tmp_path / "a", **cfg), sds(), torch.Generator().manual_seed(3), out_dir=tmp_path / "a")
    b = tmp_path / "b"

    def kill(rec):
        if rec["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        train(tiny(b, **cfg), sds(), torch.Generator().manual_seed(3), out_dir=b, on_step=kill)
    ckpt, _ = load_state(b / "checkpoint.safetensors")
    n2 = ckpt["representation"]["model"]["means"].shape[0]
    assert ckpt["step"] == 2 and 200 < n2 < len(full.field)
    resumed = train(tiny(b, **cfg), sds(), torch.Generator().manual_seed(99), out_dir=b, resume=True)
    assert len(resumed.field) == len(full.field) != 200
    for k in PARAMS:
        assert torch.allclose(getattr(full.field, k), getattr(resumed.field, k), atol=1e-6), k
    log = [json.loads(ln) for ln in (b / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2, 3] and log[0]["gaussians"] == 200 and log[2]["gaussians"] == n2
    assert "densified" not in log[0] and log[1]["densified"]["gaussians"] == log[1]["gaussians"]
    assert [r["gaussians"] for r in log] == [json.loads(ln)["gaussians"]
                                             for ln in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]


def test_two_steps_write_every_output(tmp_path):
    cfg = tiny(tmp_path)
    result = train(cfg, sds(), torch.Generator().manual_seed(0), out_dir=tmp_path)
    assert result.steps_done == 2 and isinstance(result.field, GaussianModel)
    files = save_outputs(resolve3d(cfg), result, tmp_path)
    assert set(files) == {"gaussians", "ply", "turntable", "views", "obj", "glb"}
    for name in ("gaussians.safetensors", "gaussians.ply", "views.png", "mesh.obj", "log.jsonl"):
        assert (tmp_path / name).stat().st_size > 0, name
    log = [json.loads(ln) for ln in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["gaussians"] for r in log] == [300, 300]
    model, renderer = load_gaussians(tmp_path / "gaussians.safetensors")
    cam = orbit_cameras(15.0, 30.0, 2.75, 50.0)
    with torch.no_grad():
        want = result.renderer(result.field, cam, 16, 16).image
        assert torch.allclose(renderer(model, cam, 16, 16).image, want)
        assert torch.allclose(load_scene(tmp_path)[0].means, model.means)
    ply = load_ply(tmp_path / "gaussians.ply")
    assert tuple(ply) == PLY_PROPERTIES
    header = (tmp_path / "gaussians.ply").read_bytes().split(b"end_header\n")[0].decode()
    assert "format binary_little_endian 1.0" in header and "element vertex 300" in header
    np.testing.assert_array_equal(np.stack([ply["x"], ply["y"], ply["z"]], 1), model.means.detach().numpy())
    np.testing.assert_array_equal(ply["opacity"], model.opacity_logits.detach().numpy())
    np.testing.assert_array_equal(np.stack([ply[f"rot_{i}"] for i in range(4)], 1), model.quats.detach().numpy())
    np.testing.assert_array_equal(np.stack([ply[f"scale_{i}"] for i in range(3)], 1), model.log_scales.detach().numpy())
    np.testing.assert_array_equal(np.stack([ply[f"f_dc_{i}"] for i in range(3)], 1), model.sh_dc.detach().numpy())


def test_the_mesh_of_one_gaussian_is_its_level_set(tmp_path):
    """density = o exp(-|x - mu|^2 / 2 s^2): the level-L surface is the sphere of radius s sqrt(2 ln(o / L))."""
    m = GaussianModel(GaussianConfig(num_points=1), n=1)
    s, o, level = 0.2, 0.8, 0.1
    with torch.no_grad():
        m.means.zero_()
        m.means[0, 0] = 0.1
        m.log_scales.fill_(math.log(s))
        m.opacity_logits.fill_(math.log(o / (1 - o)))
        m.sh_dc.fill_((0.9 - 0.5) / 0.28209479177387814)
    mesh = extract_mesh(_GaussianDensity(m), resolution=48, level=level)
    r = np.linalg.norm(mesh.vertices - np.array([0.1, 0.0, 0.0]), axis=1)
    assert abs(r.mean() - s * math.sqrt(2 * math.log(o / level))) < 0.01
    assert np.allclose(mesh.visual.vertex_colors[:, :3], round(0.9 * 255), atol=1)
    # the density agrees with the closed form and the block culling loses nothing
    p = torch.rand(500, 3) * 2 - 1
    want = o * torch.exp(-((p - m.means[0]) ** 2).sum(-1) / (2 * s * s))
    assert torch.allclose(m.density(p), want.detach(), atol=1e-5 + o * math.exp(-8))
    save_ply(tmp_path / "one.ply", m)
    assert load_ply(tmp_path / "one.ply")["scale_0"][0] == pytest.approx(math.log(s))


def test_options_are_checked_and_field_runs_keep_their_identity():
    with pytest.raises(ValueError, match="shading"):
        resolve3d(Gen3DConfig(prompt="x", representation="gaussians", shading_prob=0.5))
    with pytest.raises(ValueError, match="num_points"):
        GaussianConfig(num_points=0)
    field = resolve3d(Gen3DConfig(prompt="x"))
    rid = {"prompt": "x", "representation": "field", "gaussians": {}, "grid": {}}
    assert run_id3d(field, rid) == {"prompt": "x", "grid": {}}
    gauss = resolve3d(Gen3DConfig(prompt="x", representation="gaussians"))
    assert run_id3d(gauss, rid) == {"prompt": "x", "representation": "field", "gaussians": {}}


def test_command_two_steps_on_the_world_prior(tmp_path):
    from rewardsds.cli import main

    out = tmp_path / "run"
    code = main(["gen3d", "a red circle", "--representation", "gaussians", "--steps", "2", "--n-noises", "2",
                 "--gaussians.num-points", "500", "--video-resolution", "32", "--video-frames", "2",
                 "--mesh-resolution", "16", "--device", "cpu", "--out", str(out), "--no-progress"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and set(summary["files"]) == {"gaussians", "ply", "turntable", "views", "obj", "glb"}
    log = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]
    assert [r["gaussians"] for r in log] == [500, 500] and log[0]["reward_step"]
    assert json.loads((out / "config.json").read_text())["representation"] == "gaussians"


def test_background_is_the_fields():
    from rewardsds.config3d import render_config
    from rewardsds.representations.gaussians import new_gaussian_scene

    cfg = resolve3d(tiny(None, out="x", background="solid", background_color=(0.1, 0.2, 0.3)))
    p = GaussianPrior({PROMPT: (0.9, 0.1, 0.1)}, size=16)
    scene = new_gaussian_scene(cfg.gaussians, render_config(cfg), p, PROMPT, ViewConfig(), 2, torch.Generator())
    assert isinstance(scene.renderer.background, SolidBackground)
    assert scene.renderer.background.color == (0.1, 0.2, 0.3)
