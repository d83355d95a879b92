"""gen3d on the embedded 3D world: the `world3d` alias and its family defaults, the `world3d-clip` reward,
and the `judge3d` verdict in summary.json. The 3D weights are not trained yet, so a 2-step CLIP and
prior are trained once per session into a tmp folder (the `tiny3d` fixture of conftest.py)."""

import json
import math
import random

import pytest
import torch
from _builders import TINY_GEN3D

from rewardsds.cli import main

PROMPT = "a big red cube"


def test_world3d_prior_without_weights_is_one_line_naming_the_trainers(tmp_path, no_3d_weights, capsys):
    out = tmp_path / "run"
    code = main(["gen3d", PROMPT, "--prior", "world3d", "--out", str(out), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "python -m rewardsds.world3d.train.clip" in err and "python -m rewardsds.world3d.train.prior" in err
    assert not out.exists()


def test_world3d_clip_without_weights_says_how_to_train_it(no_3d_weights):
    from rewardsds.rewards.factory import load_reward

    with pytest.raises(FileNotFoundError, match="rewardsds.world3d.train.clip"):
        load_reward("world3d-clip")


def test_the_3d_family_is_a_pixel_world_with_view_prompts_and_its_cameras(no_3d_weights):
    from rewardsds.config3d import WORLD3D_ELEVATION, Gen3DConfig, resolve3d
    from rewardsds.defaults import SD_DEFAULTS, WORLD_DEFAULTS_BEFORE, default_reward, family_defaults
    from rewardsds.render import CameraRanges
    from rewardsds.world.scenes import BACKGROUND
    from rewardsds.world3d.render import ELEVATION_RANGE

    fam = family_defaults("world3d")
    assert fam is not SD_DEFAULTS and fam.guidance_scale == WORLD_DEFAULTS_BEFORE.guidance_scale
    assert default_reward("world3d") == ("world3d-clip", None) and fam.view_dependent_3d
    assert WORLD3D_ELEVATION == ELEVATION_RANGE
    cfg = resolve3d(Gen3DConfig(prompt=PROMPT, prior="world3d"))
    assert (cfg.view_dependent, cfg.reward, cfg.background, cfg.x0_recon) == (True, "world3d-clip", "solid", False)
    assert cfg.background_color == BACKGROUND and cfg.cameras.elevation == (0.0, 45.0) and resolve3d(cfg) == cfg
    with pytest.raises(ValueError, match="0-60"):
        resolve3d(Gen3DConfig(prompt=PROMPT, prior="world3d", cameras=CameraRanges(elevation=(10.0, 80.0))))
    # Gaussians for a third of the field's steps (annealing over 80% of them); the field keeps its 400
    assert (cfg.representation, cfg.steps, cfg.t_anneal_steps) == ("gaussians", 133, 106)
    field = resolve3d(Gen3DConfig(prompt=PROMPT, prior="world3d", representation="field"))
    assert (field.representation, field.steps, field.t_anneal_steps) == ("field", 400, 320)
    assert resolve3d(Gen3DConfig(prompt=PROMPT, prior="world3d", steps=50)).steps == 50
    # the 2D world keeps its own: no view words, the default cameras, the field
    flat = resolve3d(Gen3DConfig(prompt="a red circle"))
    assert (flat.view_dependent, flat.reward, flat.cameras) == (False, "world-clip", CameraRanges())
    assert (flat.representation, flat.steps) == ("field", 400)


# --- the judge3d verdict on a known scene, through gen3d's code path -------------------------------------------

def _scene_field(caption: str, sigma: float):
    """A `RadianceField` whose density is `sigma` inside the solids of a world scene (and 0 outside)."""
    from rewardsds.representations.field import FieldConfig, RadianceField
    from rewardsds.world3d.render import scene_density_colour
    from rewardsds.world3d.scenes import sample_scene

    rng = random.Random(0)
    scene = next(s for s in (sample_scene(rng, 1) for _ in range(500)) if s.caption() == caption)

    class SceneField(RadianceField):
        def forward(self, points):
            density, rgb = scene_density_colour(scene, points)
            return sigma * density, rgb

    return SceneField(FieldConfig(resolutions=(2,), features=1, hidden=2))


def test_judge3d_reads_a_known_scene_and_needs_it_opaque():
    from rewardsds.world3d.model_judge import density_threshold, verdict_summary

    resolution = 48
    field = _scene_field(PROMPT, sigma=100.0)
    threshold = density_threshold(field)
    assert math.isclose(1 - math.exp(-threshold * 0.1), 0.5)  # half opaque over a quarter of the thinnest object
    right = verdict_summary(field, PROMPT, resolution)
    assert right["all_correct"] and right["accuracy"] == 1.0 and right["duplicated"] == []
    assert set(right["facts"]) == {"object0.colour", "object0.shape", "object0.size", "count"}
    wrong = verdict_summary(field, "a small blue sphere", resolution)
    assert not wrong["all_correct"] and not wrong["facts"]["object0.colour"]
    fog = verdict_summary(_scene_field(PROMPT, sigma=0.5 * threshold), PROMPT, resolution)
    assert not fog["all_correct"] and not fog["facts"]["count"]  # too thin to be an object
    # what SDS makes: an object opaque in every render (sigma 9, ~1.5x the threshold) whose colour carries
    # the renders' shading (0.6x the albedo) reads right, at any grid resolution
    class Shaded(type(field)):
        def forward(self, points):
            density, rgb = super().forward(points)
            return density * (9.0 / 100.0), 0.6 * rgb

    shaded = Shaded(field.config)
    for res in (32, 64):
        assert verdict_summary(shaded, PROMPT, res)["all_correct"]
    assert verdict_summary(field, "a red circle", resolution) is None  # not a 3D world caption


def _scene_gaussians(caption: str, opacity: float):
    """A `GaussianModel` filling a world scene's solids: one Gaussian (std 0.025) per point of a 0.05 lattice."""
    from rewardsds.representations.gaussians import C0, GaussianModel
    from rewardsds.world3d.render import scene_density_colour
    from rewardsds.world3d.scenes import sample_scene

    rng = random.Random(0)
    scene = next(s for s in (sample_scene(rng, 1) for _ in range(500)) if s.caption() == caption)
    axis = torch.arange(-1.0, 1.0, 0.05)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).view(-1, 3)
    density, rgb = scene_density_colour(scene, points)
    keep = density > 0
    g = GaussianModel(n=int(keep.sum()))
    with torch.no_grad():
        g.means.copy_(points[keep])
        g.log_scales.fill_(math.log(0.025))
        g.opacity_logits.fill_(math.log(opacity / (1 - opacity)))
        g.sh_dc.copy_((rgb[keep] - 0.5) / C0)
    return g


def test_judge3d_reads_gaussians_by_their_summed_opacity():
    from rewardsds.world3d.model_judge import density_threshold, verdict_summary

    solid = _scene_gaussians(PROMPT, opacity=0.9)
    assert density_threshold(solid) == 0.5
    assert verdict_summary(solid, PROMPT, 32)["all_correct"]
    assert not verdict_summary(solid, "a big red sphere", 32)["all_correct"]
    assert not verdict_summary(_scene_gaussians(PROMPT, opacity=0.2), PROMPT, 32)["facts"]["count"]  # a haze


# --- end to end on tiny trained 3D models ---------------------------------------------------------------------

def test_gen3d_on_a_3d_prior_writes_judge3d(tiny3d, tmp_path, capsys):
    clip, prior = tiny3d
    out = tmp_path / "run"
    code = main(["gen3d", PROMPT, "--prior", str(prior), "--reward", f"world3d-clip@{clip}", "--out", str(out),
                 *TINY_GEN3D])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    verdict = summary["judge3d"]
    assert set(verdict) >= {"facts", "accuracy", "all_correct", "duplicated"}
    assert 0.0 <= verdict["accuracy"] <= 1.0 and "object0.shape" in verdict["facts"]
    config = json.loads((out / "config.json").read_text())
    assert config["view_dependent"] and config["cameras"]["elevation"] == [0.0, 45.0]
    log = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]
    assert all(p.endswith((", front view", ", side view", ", back view")) for r in log for p in r["prompts"])
    said = log[0]["reward_prompts"]  # the reward step's per-view texts, one per row of "rewards" (views 2)
    assert len(said) == len(log[0]["rewards"]) == 2 and set(said) <= set(log[0]["prompts"])
    # a word outside the 3D world's vocabulary is refused, naming the 3D world's words
    code = main(["gen3d", "a red circle", "--prior", str(prior), "--out", str(tmp_path / "bad"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "3D world does not know: circle" in err and "cylinder" in err
