"""Bad input to generate / edit / gen3d: one line on stderr, exit 2, no traceback, nothing written or lost.

Every case runs the real CLI (`rewardsds.cli.main`) on the embedded world; cases that are caught by the
option checks never load a model. World-eval's and sweep/eval/report's tables live beside their commands
(test_world_eval_inputs.py, test_sweep_eval_inputs.py)."""

import json

import pytest
import torch

from rewardsds.cli import main

P = "a red circle to the left of a blue square"
OUT = "__OUT__"

GENERATE = [
    ("cfg-nan", ["--cfg", "nan"], "guidance scale"),
    ("cfg-inf", ["--cfg", "inf"], "guidance scale"),
    ("cfg-negative", ["--cfg", "-1"], "guidance scale"),
    ("preview-cfg-zero", ["--preview-cfg", "0"], "guidance scale"),
    ("lr-nan", ["--lr", "nan"], "lr"),
    ("lr-negative", ["--lr", "-1"], "lr"),
    ("temperature-nan", ["--softmax-temperature", "nan"], "temperature"),
    ("temperature-zero", ["--softmax-temperature", "0"], "temperature"),
    ("reward-steps-nan", ["--reward-steps", "nan"], "reward_steps"),
    ("reward-steps-negative", ["--reward-steps", "-0.5"], "reward_steps"),
    ("reward-steps-fractional-count", ["--reward-steps", "2.5"], "reward_steps"),
    ("reward-steps-over-steps", ["--steps", "10", "--reward-steps", "20"], "reward_steps"),
    ("steps-zero", ["--steps", "0"], "steps"),
    ("steps-not-a-number", ["--steps", "ten"], "steps"),
    ("n-noises-zero", ["--n-noises", "0"], "n_noises"),
    ("denoise-steps-zero", ["--denoise-steps", "0"], "denoise_steps"),
    ("checkpoint-every-zero", ["--checkpoint-every", "0"], "checkpoint-every"),
    ("t-min-above-t-max", ["--t-min", "0.9", "--t-max", "0.1"], "t_min"),
    ("t-min-nan", ["--t-min", "nan"], "t_min"),
    ("t-max-above-one", ["--t-max", "1.5"], "t_max"),
    ("method-dds", ["--method", "dds"], "method"),
    ("unknown-flag", ["--n-noise", "3"], "n-noise"),
    ("seed-huge", ["--seed", str(2**64)], "seed"),
    ("seed-negative", ["--seed", "-1"], "seed"),
    ("device-meta", ["--device", "meta"], "device"),
    ("device-garbage", ["--device", "gpu7"], "device"),
    ("batch-zero", ["--batch", "0"], "batch"),
    ("threads-negative", ["--threads", "-2"], "threads"),
    ("init-image-missing-flag", ["--init", "image"], "--init-image"),
    ("init-image-missing-file", ["--init", "image", "--init-image", "/nonexistent/x.png"], "does not exist"),
    ("unknown-preset", ["--preset", "paper-huge"], "preset"),
    ("resume-and-overwrite", ["--resume", "--overwrite"], "--resume"),
    ("unknown-reward", ["--reward", "no-such-reward"], "reward"),
    ("reward-os-system", ["--reward", "os:system"], "os:system"),
    ("prior-missing-folder", ["--prior", "/nonexistent/prior"], "prior"),
]
if torch.cuda.is_available():  # the case needs a machine without CUDA
    GENERATE = [c for c in GENERATE if c[0] != "device-cuda"]
else:
    GENERATE.append(("device-cuda", ["--device", "cuda"], "CUDA"))


def _call(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err


def _assert_one_line(code, err, needle):
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert needle.lower() in err.lower(), err


@pytest.mark.parametrize("name,args,needle", GENERATE, ids=[c[0] for c in GENERATE])
def test_generate_bad_option(tmp_path, capsys, name, args, needle):
    out = tmp_path / "run"
    code, err = _call(capsys, ["generate", P, "--out", str(out), "--no-progress", *args])
    _assert_one_line(code, err, needle)
    assert not out.exists()  # refused before the run folder is made


@pytest.mark.parametrize("prompt,needle", [("", "empty"), ("   ", "empty"),
                                           ("a photo of a dog", "does not know: dog"),
                                           ("a red circle " * 40, "tokens long")])
def test_generate_bad_prompt(tmp_path, capsys, prompt, needle):
    out = tmp_path / "run"
    code, err = _call(capsys, ["generate", prompt, "--out", str(out), "--no-progress"])
    _assert_one_line(code, err, needle)
    assert not out.exists()


def test_unknown_words_can_be_allowed(tmp_path, capsys):
    code, _ = _call(capsys, ["generate", "a red dog", "--out", str(tmp_path / "r"), "--steps", "2",
                             "--no-progress", "--allow-unknown-words", "--method", "sds"])
    assert code == 0


def _finished_run(tmp_path, capsys, *extra):
    out = tmp_path / "done"
    code, _ = _call(capsys, ["generate", P, "--out", str(out), "--steps", "2", "--no-progress", *extra])
    assert code == 0
    return out


def test_finished_run_is_not_overwritten_without_flag(tmp_path, capsys):
    out = _finished_run(tmp_path, capsys)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, err = _call(capsys, ["generate", P, "--out", str(out), "--steps", "2", "--no-progress"])
    _assert_one_line(code, err, "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    code, _ = _call(capsys, ["generate", P, "--out", str(out), "--steps", "2", "--no-progress", "--overwrite"])
    assert code == 0


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    out = _finished_run(tmp_path, capsys)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, err = _call(capsys, ["generate", P, "--out", str(out), "--steps", "4", "--no-progress", "--resume",
                               "--n-noises", "6"])
    _assert_one_line(code, err, "another run")
    assert "n_noises" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != "config.json"} == \
        {k: v for k, v in before.items() if k != "config.json"}


@pytest.mark.parametrize("damage", ["pickle", "truncated"])
def test_bad_checkpoint_on_resume(tmp_path, capsys, damage):
    out = _finished_run(tmp_path, capsys)
    ckpt = out / "checkpoint.safetensors"
    if damage == "pickle":
        torch.save({"step": 1}, ckpt)
    else:
        ckpt.write_bytes(ckpt.read_bytes()[:50])
    code, err = _call(capsys, ["generate", P, "--out", str(out), "--steps", "4", "--no-progress", "--resume"])
    _assert_one_line(code, err, "pickle" if damage == "pickle" else "corrupt")


def test_legacy_pickle_checkpoint_is_refused(tmp_path, capsys):
    out = tmp_path / "old"
    out.mkdir()
    torch.save({"x": 1}, out / "checkpoint.pt")
    code, err = _call(capsys, ["generate", P, "--out", str(out), "--no-progress", "--resume"])
    _assert_one_line(code, err, "pickle")


def test_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("keep me")
    code, err = _call(capsys, ["generate", P, "--out", str(f), "--no-progress"])
    _assert_one_line(code, err, "is a file")
    assert f.read_text() == "keep me"


@pytest.mark.parametrize("start", ["0", "2"], ids=["mid-run", "picking-the-start"])
def test_reward_that_returns_nan_mid_run(tmp_path, capsys, start):
    out = tmp_path / "run"
    code, err = _call(capsys, ["generate", P, "--out", str(out), "--steps", "3", "--no-progress",
                               "--reward", "tests.helpers.rewards:nan_reward", "--init-samples", start,
                               "--init-sample-steps", "2"])
    _assert_one_line(code, err, "non-finite")


EDIT = [
    ("missing-image", ["/nonexistent/in.png", "--source", "a red circle", "--target", "a blue circle"],
     "does not exist"),
    ("empty-source", ["__IMG__", "--source", "", "--target", "a blue circle"], "source prompt is empty"),
    ("unknown-target", ["__IMG__", "--source", "a red circle", "--target", "a blue cat"], "cat"),
    ("folder-image", ["__DIR__", "--source", "a red circle", "--target", "a blue circle"], "folder"),
    ("not-an-image", ["__TXT__", "--source", "a red circle", "--target", "a blue circle"], "cannot read"),
    ("edit-cfg-nan", ["__IMG__", "--source", "a red circle", "--target", "a blue circle", "--cfg", "nan"],
     "guidance scale"),
]


@pytest.mark.parametrize("name,args,needle", EDIT, ids=[c[0] for c in EDIT])
def test_edit_bad_input(tmp_path, capsys, name, args, needle):
    from PIL import Image

    img = tmp_path / "in.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(img)
    (tmp_path / "dir").mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    subst = {"__IMG__": str(img), "__DIR__": str(tmp_path / "dir"), "__TXT__": str(tmp_path / "notes.txt")}
    out = tmp_path / "run"
    code, err = _call(capsys, ["edit", *[subst.get(a, a) for a in args], "--out", str(out), "--no-progress"])
    _assert_one_line(code, err, needle)
    assert not (out / "summary.json").exists()


GEN3D = [
    ("video-frames-zero", ["--video-frames", "0"], "video-frames"),
    ("video-resolution-tiny", ["--video-resolution", "2"], "video-resolution"),
    ("mesh-resolution-tiny", ["--mesh-resolution", "4"], "mesh-resolution"),
    ("views-zero", ["--views", "0"], "views"),
    ("n-samples-zero", ["--n-samples", "0"], "n-samples"),
    ("render-resolution-tiny", ["--render-resolutions", "2"], "render resolutions"),
    ("shading-prob-two", ["--shading-prob", "2"], "shading-prob"),
    ("opacity-reg-nan", ["--opacity-reg", "nan"], "opacity-reg"),
    ("lr-nan-3d", ["--lr", "nan"], "lr"),
    ("lr-negative-3d", ["--lr", "-1"], "lr"),
    ("method-reward-dds", ["--method", "reward-dds"], "method"),
    ("anneal-outside", ["--t-anneal-to", "0.99"], "anneal_to"),
]


@pytest.mark.parametrize("name,args,needle", GEN3D, ids=[c[0] for c in GEN3D])
def test_gen3d_bad_option(tmp_path, capsys, name, args, needle):
    out = tmp_path / "run"
    code, err = _call(capsys, ["gen3d", "a red circle", "--out", str(out), "--no-progress", *args])
    _assert_one_line(code, err, needle)
    assert not out.exists()


def test_finish_says_where_and_what(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["generate", "a red circle", "--out", str(out), "--steps", "3", "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert str(out) in said and "judge:" in said and "video" in said
    summary = json.loads((out / "summary.json").read_text())
    assert summary["judge"] and summary["out"] == str(out)
