"""A 3D world CLIP trained on camera-frame captions (`world3d.train.clip --camera-frame`): each relation named as
the view shows it, no view words. gen3d learns this from the CLIP's training record and prompts it per view in
that view's frame; the gate captions its scenes the same way; CLIPs trained on view words are unchanged."""

import json
import random

import pytest
import torch
from _builders import TINY_GEN3D

from rewardsds.cli import main
from rewardsds.config3d import Gen3DConfig, resolve3d
from rewardsds.world3d import paths as paths3d
from rewardsds.world3d.paths import clip_captions
from rewardsds.world3d.scenes import camera_caption, camera_frame, sample_scene

PROMPT = "a red cube to the left of a blue sphere"


def test_camera_caption_turns_floor_plan_relations_only():
    assert camera_caption(PROMPT, 0.0) == PROMPT
    assert camera_caption(PROMPT, 180.0) == "a red cube to the right of a blue sphere"
    assert camera_caption(PROMPT, 90.0) == "a red cube behind a blue sphere"  # the camera stands at +x
    assert camera_caption(PROMPT, 270.0) == "a red cube in front of a blue sphere"
    assert camera_caption("a small red cube in front of a blue cone", 180.0) == "a small red cube behind a blue cone"
    for same in ("a red cube on top of a blue cube", "a big red cube", "a dog", "a red cube and a blue cone"):
        assert camera_caption(same, 137.0) == same


def test_camera_caption_agrees_with_the_turned_scene():
    """What gen3d asks of a view is what the trainer captioned for the same scene and camera."""
    rng = random.Random(0)
    checked = 0
    while checked < 60:
        scene, az = sample_scene(rng, 2), rng.uniform(0.0, 360.0)
        if scene.relation not in ("left of", "right of", "in front of", "behind") or abs(az % 90.0 - 45.0) < 12.0:
            continue  # near a diagonal the two centres' cross jitter may tip the axis either way
        assert camera_caption(scene.caption(), az) == camera_frame(scene, az).caption()
        checked += 1


def test_view_texts_give_the_reward_each_cameras_caption():
    from rewardsds.render.cameras import orbit_cameras
    from rewardsds.representations.field_scene import ViewConfig, view_texts

    cams = orbit_cameras(torch.full((4,), 10.0), torch.tensor([0.0, 90.0, 180.0, 270.0]), torch.full((4,), 3.0),
                         torch.full((4,), 40.0))
    view = ViewConfig(views=4, view_dependent=True, reward_caption=camera_caption)
    prompts, said = view_texts(PROMPT, view, cams)
    assert prompts == [PROMPT + s for s in (", front view", ", side view", ", back view", ", side view")]
    assert said == [PROMPT, "a red cube behind a blue sphere", "a red cube to the right of a blue sphere",
                    "a red cube in front of a blue sphere"]


def _record(folder, camera_frame: bool):
    folder.mkdir()
    (folder / "training_record.json").write_text(json.dumps({"config": {"camera_frame": str(camera_frame)}}))
    return folder


def test_gen3d_takes_the_caption_frame_from_the_clips_record(tmp_path):
    cam, words = _record(tmp_path / "cam", True), _record(tmp_path / "words", False)

    def resolved(**kw):
        return resolve3d(Gen3DConfig(prompt=PROMPT, prior="world3d", **kw)).reward_camera_frame

    assert resolved(reward=f"world3d-clip@{cam}") is True
    assert resolved(reward=f"world3d-clip@{words}") is False
    assert resolved() is (clip_captions(paths3d.clip_dir()) == "camera-frame")  # the shipped CLIP says
    assert resolved(reward=f"world3d-clip@{cam}", reward_camera_frame=False) is False  # an explicit choice wins
    assert clip_captions(tmp_path / "no-such-clip") == "view-words"  # every CLIP before the option
    with pytest.raises(ValueError, match="mixes 3D world CLIPs"):
        resolved(reward=f"0.5*world3d-clip@{cam} + 0.5*world3d-clip@{words}")


def test_a_camera_frame_clip_trains_gates_and_guides_gen3d(tiny3d, tmp_path, capsys):
    from rewardsds.world3d.evaluate import main as evaluate
    from rewardsds.world3d.train.clip import Clip3DTrainConfig
    from rewardsds.world3d.train.clip import main as train

    _, prior = tiny3d
    clip = tmp_path / "clip"
    train(Clip3DTrainConfig(out=clip, work=tmp_path / "work", camera_frame=True, steps=1, batch=8, image_size=16))
    assert clip_captions(clip) == "camera-frame"
    with pytest.raises(ValueError, match="position-swapped twins"):
        Clip3DTrainConfig(out=clip, work=tmp_path / "w2", camera_frame=True, swap_pairs=0.5, steps=1)
    assert evaluate(["--parts", "clip", "--clip", str(clip), "--prior", str(prior), "--clip-scenes", "3"]) == 0
    out = tmp_path / "run"
    code = main(["gen3d", PROMPT, "--prior", str(prior), "--reward", f"world3d-clip@{clip}", "--out", str(out),
                 *TINY_GEN3D])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["reward_camera_frame"] is True
    log = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]
    said, prompts = log[0]["reward_prompts"], log[0]["prompts"]
    assert all(p.endswith(" view") for p in prompts)  # the prior still reads view words
    assert len(said) == 2 and not any(p.endswith(" view") for p in said)
    assert set(said) <= {camera_caption(PROMPT, a) for a in range(0, 360, 5)}
