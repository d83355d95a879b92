"""gen3d through a multi-view prior (`--prior world3d-mv` or a multi-view folder): one camera set per step, its
cameras in the prior's conditioning, RewardSDS candidates as sets of views; the alias's defaults and errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from _builders import build_tiny_multiview_prior

from rewardsds.cli import main
from rewardsds.world3d import paths as paths3d

PROMPT = "a big red cube"
SMALL = ["--steps", "2", "--n-noises", "2", "--render-resolutions", "16", "--n-samples", "8",
         "--grid.resolutions", "8", "16", "--grid.features", "2", "--grid.hidden", "8", "--video-resolution", "16",
         "--video-frames", "2", "--mesh-resolution", "16", "--threads", "1", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def mv_dir(tmp_path_factory):
    return build_tiny_multiview_prior(tmp_path_factory.mktemp("tiny_mv"))


def test_world3d_mv_without_weights_is_one_line_naming_its_trainer(tmp_path, no_3d_weights, capsys):
    out = tmp_path / "run"
    code = main(["gen3d", PROMPT, "--prior", "world3d-mv", "--out", str(out), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "python -m rewardsds.world3d.train.mvprior" in err and str(paths3d.mvprior_dir()) in err
    assert not out.exists()


def test_the_multiview_family_resolves_to_camera_sets_and_view_free_prompts(no_3d_weights, mv_dir):
    from rewardsds.config3d import Gen3DConfig, prior_views, resolve3d
    from rewardsds.defaults import default_reward, family_defaults

    assert prior_views("world3d-mv") == prior_views(str(mv_dir)) == 4 and prior_views("world3d") == 1
    assert default_reward("world3d-mv") == ("world3d-clip", None)
    assert not family_defaults("world3d-mv").view_dependent_3d
    for spec in ("world3d-mv", str(mv_dir)):
        cfg = resolve3d(Gen3DConfig(prompt=PROMPT, prior=spec))
        assert (cfg.views, cfg.view_dependent, cfg.background, cfg.x0_recon) == (4, False, "solid", False)
        assert cfg.cameras.elevation == (0.0, 45.0)  # the 3D world's training range
        # its reward, world3d-clip, learnt the view words: it still reads them from each view's camera
        assert cfg.reward_view_words is True
    assert resolve3d(Gen3DConfig(prompt=PROMPT, prior="world3d-mv", reward_view_words=False)).reward_view_words is False
    assert resolve3d(Gen3DConfig(prompt=PROMPT, prior="world3d")).reward_view_words is True  # as its prior's
    assert resolve3d(Gen3DConfig(prompt="a red circle", prior="world")).reward_view_words is False
    assert resolve3d(Gen3DConfig(prompt=PROMPT, prior="world3d-mv", views=8)).views == 8  # two sets
    with pytest.raises(ValueError, match="sets of 4 views"):
        resolve3d(Gen3DConfig(prompt=PROMPT, prior="world3d-mv", views=6))
    with pytest.raises(ValueError, match="single-view prior"):
        resolve3d(Gen3DConfig(prompt=PROMPT, prior="world3d-mv", method="reward-vsd"))


def test_each_step_renders_camera_sets_whose_cameras_reach_the_views(mv_dir):
    from rewardsds.priors.multiview import MultiViewPrior
    from rewardsds.representations.field import FieldConfig
    from rewardsds.representations.field_scene import RenderConfig, ViewConfig, new_field_scene

    prior = MultiViewPrior.from_pretrained(mv_dir)
    g = torch.Generator().manual_seed(0)
    scene = new_field_scene(FieldConfig(resolutions=(8,), features=2, hidden=8), RenderConfig(n_samples=4), prior,
                            PROMPT, ViewConfig(views=8, resolutions=(8,), camera_set=4), 2, g)
    c2w = scene.views(0, g).cameras
    assert c2w.shape == (8, 4, 4)
    eye = c2w[:, :3, 3]
    for s in range(2):
        e = eye[4 * s:4 * s + 4]
        elevation = torch.rad2deg(torch.asin(e[:, 1] / e.norm(dim=-1)))
        torch.testing.assert_close(elevation, elevation[:1].expand(4))  # one elevation per set
        az = torch.rad2deg(torch.atan2(e[:, 0], e[:, 2]))
        torch.testing.assert_close((az.diff() % 360.0), torch.full((3,), 90.0), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="camera sets of 4"):
        ViewConfig(views=6, camera_set=4)


@pytest.mark.parametrize("method,spec", [("sds", "world3d-mv"), ("reward-sds", "folder")])
def test_gen3d_two_steps_on_a_multiview_prior(mv_dir, tmp_path, monkeypatch, capsys, method, spec):
    """`--prior world3d-mv` (its weights folder stood in for by the tiny model) and a multi-view folder."""
    if spec == "world3d-mv":
        shutil.copytree(mv_dir, tmp_path / "weights" / "mvprior")
        monkeypatch.setattr(paths3d, "weights_dir", lambda: tmp_path / "weights")
    out = tmp_path / method
    code = main(["gen3d", PROMPT, "--prior", spec if spec == "world3d-mv" else str(mv_dir), "--method", method,
                 "--reward", "tests.helpers.rewards:redness", "--out", str(out), *SMALL])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and "judge3d" in summary  # the 3D world's family: its exact judge reads the field
    config = json.loads((out / "config.json").read_text())
    assert config["views"] == 4 and not config["view_dependent"] and config["reward_view_words"]
    log = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]
    assert [r["prompts"] for r in log] == [[PROMPT]] * 2  # view-free: the cameras carry the view
    assert "reward_prompts" not in log[1]  # no reward on the second step
    if method == "reward-sds":
        assert [r["reward_step"] for r in log] == [True, False]  # K = half the run
        # the four views of one set (azimuths 90 apart): front, back and two sides, whatever the first azimuth
        said = log[0]["reward_prompts"]
        assert {x.removeprefix(PROMPT + ", ") for x in said} == {"front view", "side view", "back view"}
        assert len(said) == 4  # one per view, in the order of the rows of "rewards"
        assert len(log[0]["rewards"]) == 4 and len(log[0]["rewards"][0]) == 2  # [V, N]
        assert len(log[0]["weights"]) == 2  # shared by the views: one weight per candidate


def test_view_texts_give_the_prior_and_the_reward_their_own_words():
    from rewardsds.render.cameras import orbit_cameras
    from rewardsds.representations.field_scene import ViewConfig, view_texts

    cams = orbit_cameras(torch.tensor([10.0, 10.0]), torch.tensor([0.0, 180.0]), torch.tensor([3.0, 3.0]),
                         torch.tensor([40.0, 40.0]))
    said = ["a red cube, front view", "a red cube, back view"]
    for prior_words, reward_words, expect in ((False, False, (["a red cube"] * 2, None)),
                                              (True, False, (said, None)), (True, True, (said, None)),
                                              (False, True, (["a red cube"] * 2, said))):
        view = ViewConfig(views=2, view_dependent=prior_words, reward_view_words=reward_words)
        assert view_texts("a red cube", view, cams) == expect  # None: the reward reads the prior's


def test_the_2d_commands_refuse_a_multiview_prior_in_one_line(mv_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["generate", PROMPT, "--prior", str(mv_dir), "--steps", "2", "--out", str(out), "--no-progress",
                 "--threads", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "multi-view prior" in err and "rewardsds gen3d" in err
    assert not out.exists()
