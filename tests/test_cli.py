"""DESIGN section 4, rung 4: every method and preset for 2 steps through the CLI, and bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from rewardsds.cli import main

REWARD = "tests.helpers.rewards:redness"


def _gen(tmp_path, prior, *extra):
    out = tmp_path / "run"
    code = main(["generate", "a red circle", "--prior", str(prior), "--reward", REWARD, "--steps", "2",
                 "--out", str(out), "--no-progress", *extra])
    return code, out


@pytest.mark.parametrize("method", ["sds", "reward-sds", "vsd", "reward-vsd", "bridge", "reward-bridge"])
def test_generate_every_method(tmp_path, tiny_pixel_dir, method):
    code, out = _gen(tmp_path, tiny_pixel_dir, "--method", method, "--n-noises", "2")
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["method"] == method
    for f in ("image.png", "image_raw.png", "config.json", "log.jsonl", "checkpoint.safetensors"):
        assert (out / f).exists(), f
    assert (out / "video.mp4").exists() or (out / "video.gif").exists()
    assert len((out / "log.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("preset", ["paper-full", "paper-small", "sds", "fast"])
def test_generate_every_preset(tmp_path, tiny_pixel_dir, preset):
    code, out = _gen(tmp_path, tiny_pixel_dir, "--preset", preset, "--denoise-steps", "2")
    assert code == 0
    cfg = json.loads((out / "config.json").read_text())
    if preset == "paper-full":
        assert cfg["n_noises"] == 10 and cfg["denoise_steps"] == 2  # the flag overrides the preset
    assert (out / "summary.json").exists()


@pytest.mark.parametrize("method", ["dds", "reward-dds", "sds"])
def test_edit(tmp_path, tiny_pixel_dir, method):
    img = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)).save(img)
    out = tmp_path / "edit"
    code = main(["edit", str(img), "--source", "a red circle", "--target", "a blue circle", "--method", method,
                 "--prior", str(tiny_pixel_dir), "--reward", REWARD, "--steps", "2", "--n-noises", "2",
                 "--out", str(out), "--no-progress"])
    assert code == 0 and (out / "summary.json").exists() and (out / "source.png").exists()


def test_resume_flag(tmp_path, tiny_pixel_dir):
    code, out = _gen(tmp_path, tiny_pixel_dir, "--checkpoint-every", "1")
    assert code == 0
    code = main(["generate", "a red circle", "--prior", str(tiny_pixel_dir), "--reward", REWARD, "--steps", "3",
                 "--out", str(out), "--no-progress", "--resume"])
    assert code == 0 and len((out / "log.jsonl").read_text().splitlines()) == 3


BAD = [
    (["--method", "nope"], None),
    (["--weighting", "nope"], None),
    (["--n-noises", "0"], "n_noises"),
    (["--denoise-steps", "0"], "denoise_steps"),
    (["--reward-steps", "5"], "reward_steps"),
    (["--reward-steps", "-0.5"], "reward_steps"),
    (["--cfg", "0"], "guidance scales"),
    (["--reward", "no-such-reward"], "no-such-reward"),
    (["--device", "cuda"], "CUDA"),
    (["--init", "image"], "--init-image"),
]


@pytest.mark.parametrize("extra,message", BAD)
def test_bad_input_is_one_clear_error(tmp_path, tiny_pixel_dir, capsys, extra, message):
    code, out = _gen(tmp_path, tiny_pixel_dir, *extra)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    if message:
        assert message in err
    assert not (out / "summary.json").exists()


def test_bad_prompts(tmp_path, tiny_pixel_dir, capsys):
    for prompt, message in (("", "empty"), ("   ", "empty"), ("red " * 40, "tokens long")):
        code = main(["generate", prompt, "--prior", str(tiny_pixel_dir), "--out", str(tmp_path / "p"),
                     "--steps", "2", "--no-progress"])
        assert code == 2 and message in capsys.readouterr().err


def test_bad_prior_and_output(tmp_path, tiny_pixel_dir, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["generate", "a red circle", "--prior", "nobody/no-such-model", "--out", str(tmp_path / "x"),
                 "--no-progress"]) == 2
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _ = _gen(tmp_path, tiny_pixel_dir, "--out", str(blocker / "sub"))
    assert code == 2 and "cannot write" in capsys.readouterr().err


@pytest.mark.parametrize("content,message", [(None, "does not exist"), (b"not an image", "cannot read")])
def test_bad_images(tmp_path, tiny_pixel_dir, capsys, content, message):
    img = tmp_path / "in.png"
    if content is not None:
        img.write_bytes(content)
    code = main(["edit", str(img), "--source", "a red circle", "--target", "a blue circle", "--prior",
                 str(tiny_pixel_dir), "--reward", REWARD, "--out", str(tmp_path / "e"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_help_and_unknown_command(capsys):
    assert main(["--help"]) == 0
    assert "generate" in capsys.readouterr().out
    assert main(["frobnicate"]) == 2
    capsys.readouterr()
    assert main(["generate", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--n-noises" in text and "--denoise-steps" in text and "reward-sds" in text


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys, rewardsds, rewardsds.losses, rewardsds.weighting, rewardsds.cli; "
            "bad = [m for m in ('diffusers', 'transformers') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
