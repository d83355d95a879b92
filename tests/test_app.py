"""`rewardsds app` without a browser: the page's fields -> the CLI's configs and their checks, the
one-run-at-a-time runner with Stop and Resume on a real run, and what the page draws. Needs no gradio."""

import dataclasses
import json
import math
import sys
import threading

import numpy as np
import pytest
import torch

from rewardsds.app import forms, views
from rewardsds.app.jobs import Busy, Progress, Runner, Stage, call_run
from rewardsds.config import EditConfig, GenerateConfig
from rewardsds.errors import UserError

REWARD = "tests.helpers.rewards:redness"


@pytest.fixture
def settings(tmp_path):
    return forms.Settings(tmp_path / "app", device="cpu", threads=1)


def form(**over):
    """The Generate tab's values as the page sends them (numbers as floats)."""
    values = {"prompt": "a red circle", "method": "reward-sds", "prior": "world", "reward": "default",
              "n_noises": 4.0, "denoise_steps": 1.0, "reward_steps": 1.0, "weighting": "top-bottom", "steps": 10.0,
              "seed": 3.0}
    return {**values, **over}


def test_generate_form_maps_to_the_cli_config(settings):
    cfg = forms.generate_config(form(reward="world-aesthetic", n_noises=6.0, denoise_steps=2.0, reward_steps=0.5),
                                settings)
    assert isinstance(cfg, GenerateConfig)
    assert (cfg.prompt, cfg.method, cfg.prior, cfg.reward) == ("a red circle", "reward-sds", "world", "world-aesthetic")
    assert (cfg.n_noises, cfg.denoise_steps, cfg.reward_steps, cfg.steps, cfg.seed) == (6, 2, 0.5, 10, 3)
    assert all(isinstance(v, int) for v in (cfg.n_noises, cfg.denoise_steps, cfg.steps, cfg.seed))
    assert (cfg.device, cfg.threads, cfg.progress, cfg.resume, cfg.overwrite) == ("cpu", 1, False, False, False)
    assert cfg.checkpoint_every == forms.CHECKPOINT_EVERY
    assert cfg.out.parent == settings.root and cfg.out.name.endswith("-a-red-circle")
    assert not cfg.out.exists()  # the run folder is made by the run, not by the form
    assert forms.generate_config(form(), settings).reward is None  # "default": the prior's, resolved by the run
    assert forms.generate_config(form(reward_steps=3.0), settings).reward_steps == 3  # a whole count of steps


@pytest.mark.parametrize("over, message", [
    ({"n_noises": 0.0}, "N (candidates) must be in [1, 64], got 0"),
    ({"n_noises": 2.5}, "N (candidates) must be a whole number"),
    ({"n_noises": None}, "N (candidates) is empty"),
    ({"n_noises": "four"}, "N (candidates) must be a number"),
    ({"steps": math.nan}, "steps must be a finite number"),
    ({"steps": math.inf}, "steps must be a finite number"),
    ({"reward_steps": -math.inf}, "K (reward steps) must be a finite number"),
    ({"reward_steps": -0.5}, "K (reward steps) must be a fraction"),
    ({"reward_steps": 2.5}, "reward_steps (K) must be a fraction"),  # the library's own check, as a UserError
    ({"seed": -1.0}, "seed must be in"),
    ({"prior": "/etc"}, "unknown prior '/etc'; the app offers world, sd21, sd15"),
    ({"prior": "stabilityai/stable-diffusion-2-1-base"}, "unknown prior"),
    ({"prior": "os:system"}, "unknown prior"),
    ({"reward": REWARD}, "unknown reward"),
    ({"reward": "aesthetic@/tmp/head.pth"}, "unknown reward"),
    ({"method": "reward-dds"}, "unknown method 'reward-dds'"),
    ({"weighting": "best"}, "unknown weighting"),
    ({"prompt": "   "}, "the prompt is empty"),
    ({"prompt": None}, "the prompt is empty"),
    ({"prompt": "a" * 5000}, "at most 1000"),
])
def test_bad_fields_are_one_clear_message(settings, over, message):
    with pytest.raises(UserError) as e:
        forms.generate_config(form(**over), settings)
    assert message in str(e.value)
    assert "\n" not in str(e.value) and not settings.root.exists()


def test_compare_runs_sds_and_reward_sds_with_the_same_prompt_and_seed(settings):
    sds, rsds = forms.compare_configs(form(), settings)
    assert (sds.method, rsds.method) == ("sds", "reward-sds")
    assert dataclasses.replace(sds, method="reward-sds", out=rsds.out) == rsds
    assert sds.out.parent == rsds.out.parent and sds.out.parent.parent == settings.root
    assert (sds.out.name, rsds.out.name) == ("sds", "reward-sds") and "compare" in sds.out.parent.name


def test_edit_form(settings, tmp_path):
    values = {"image": None, "source": "a red circle", "target": "a blue circle", "method": "reward-dds",
              "prior": "world", "reward": "default", "n_noises": 5.0, "denoise_steps": 1.0, "reward_steps": 1.0,
              "weighting": "top-bottom", "steps": 5.0, "seed": 0.0}
    with pytest.raises(UserError, match="upload an image"):
        forms.edit_config(values, settings)
    with pytest.raises(UserError, match="does not exist"):
        forms.edit_config({**values, "image": str(tmp_path / "gone.png")}, settings)
    img = tmp_path / "in.png"
    from PIL import Image

    Image.new("RGB", (20, 20), (200, 30, 30)).save(img)
    with pytest.raises(UserError, match="unknown method 'sds'"):
        forms.edit_config({**values, "image": str(img), "method": "sds"}, settings)
    with pytest.raises(UserError, match="target prompt is empty"):
        forms.edit_config({**values, "image": str(img), "target": ""}, settings)
    cfg = forms.edit_config({**values, "image": str(img)}, settings)
    assert isinstance(cfg, EditConfig)
    assert (cfg.source, cfg.target, cfg.n_noises) == ("a red circle", "a blue circle", 5)
    kept = forms.keep_upload(cfg.image, settings.root)
    assert kept.parent == settings.root / "uploads" and kept.read_bytes() == img.read_bytes()


def test_gen3d_form(settings):
    cfg = forms.gen3d_config(form(reward_steps=0.5, steps=20.0), settings)
    assert (cfg.prompt, cfg.steps, cfg.reward_steps, cfg.checkpoint_every) == ("a red circle", 20, 0.5, 10)
    assert "-3d-" in cfg.out.name
    with pytest.raises(UserError, match="unknown method"):
        forms.gen3d_config(form(method="dds"), settings)


def test_run_folders_are_new_and_named_after_the_prompt(tmp_path):
    a = forms.run_folder(tmp_path, "A red circle, left of: a blue square!")
    assert a.name.endswith("-a-red-circle-left-of-a-blue-square")
    a.mkdir()
    b = forms.run_folder(tmp_path, "A red circle, left of: a blue square!")
    assert b != a and not b.exists()
    assert forms.slug("!!!") == "run"


# --- the runner ---------------------------------------------------------------------------------------

def test_one_run_at_a_time():
    release = threading.Event()

    def blocking(cfg, on_step=None):
        release.wait(10)
        return {"ok": True}

    cfg = GenerateConfig(prompt="x", steps=3)
    runner = Runner()
    job = runner.start("session-a/generate", "generate", [Stage("run", blocking, cfg)])
    with pytest.raises(Busy, match="busy: generate .* is running from another tab"):
        runner.start("session-b/generate", "generate", [Stage("run", blocking, cfg)])
    with pytest.raises(Busy, match="from this tab"):
        runner.start("session-a/generate", "generate", [Stage("run", blocking, cfg)])
    assert runner.stop("session-b/generate") == "nothing started from this tab is running"  # not its run
    release.set()
    assert job.finished.wait(10) and job.stages[0].status == "done" and job.stages[0].result == {"ok": True}
    job2 = runner.start("session-b/generate", "generate", [Stage("run", lambda c, on_step=None: {}, cfg)])
    assert job2.finished.wait(10)


def test_errors_are_kept_as_one_line():
    def bad_input(cfg, on_step=None):
        raise UserError("the prompt has words the embedded world does not know: elephant")

    def bug(cfg, on_step=None):
        raise RuntimeError("boom")

    cfg = GenerateConfig(prompt="x", steps=3)
    runner = Runner()
    job = runner.start("s/generate", "generate", [Stage("a", bad_input, cfg), Stage("b", bad_input, cfg)])
    assert job.finished.wait(10)
    assert job.error.startswith("the prompt has words") and job.stages[1].status == "waiting"  # b never ran
    job = runner.start("s/generate", "generate", [Stage("a", bug, cfg)])
    assert job.finished.wait(10)
    assert job.error == "the run failed: RuntimeError: boom (the server's log has the details)"


def test_the_model_cache_is_handed_to_run_functions_that_take_one():
    seen = {}

    def with_models(cfg, on_step=None, models=None):
        seen["models"] = models
        return {}

    def without(cfg, on_step=None):
        return {"plain": True}

    cache = object()
    call_run(with_models, None, None, cache)
    assert seen["models"] is cache
    assert call_run(without, None, None, cache) == {"plain": True}


def test_stop_keeps_the_checkpoint_and_resume_finishes_the_same_run(tmp_path, tiny_pixel_dir):
    """Stop from the page (raised from on_step at a step boundary) ends the real loop like Ctrl-C; Resume
    continues the same run folder from its last checkpoint and ends with the uninterrupted run's image."""
    from rewardsds.run2d import run_generate

    base = GenerateConfig(prompt="a red circle", prior=str(tiny_pixel_dir), reward=REWARD, n_noises=2, steps=12,
                          checkpoint_every=5, progress=False, device="cpu", threads=1, out=tmp_path / "run")
    runner = Runner()
    stage = Stage("generate", run_generate, base)
    original_update = stage.progress.update

    def update(rec):  # press Stop while step 7 runs
        original_update(rec)
        if rec["step"] == 6:
            assert runner.stop("s/generate").startswith("stopping generate")

    stage.progress.update = update
    job = runner.start("s/generate", "generate", [stage])
    assert job.finished.wait(300)
    assert stage.status == "stopped", job.error
    assert (stage.stopped_at, stage.checkpoint_step) == (7, 5)
    out = base.out
    assert (out / "checkpoint.safetensors").exists() and not (out / "summary.json").exists()
    snap = stage.progress.snapshot()
    assert snap.done == 7 and len(snap.history) == 7 and snap.tiles is not None and snap.tiles[0].shape[0] == 2

    resumed = Stage("generate", run_generate, dataclasses.replace(base, resume=True))
    job = runner.start("s/generate", "generate", [resumed])
    assert job.finished.wait(300) and resumed.status == "done", job.error
    assert resumed.progress.snapshot().history[0][0] == 5  # continued from the checkpoint's step
    lines = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == list(range(12))

    straight = dataclasses.replace(base, out=tmp_path / "straight")
    assert runner.start("s/generate", "generate", [Stage("g", run_generate, straight)]).finished.wait(300)
    from PIL import Image

    a, b = (np.asarray(Image.open(p / "image_raw.png")) for p in (out, straight.out))
    assert np.array_equal(a, b)


def _takes_models(fn) -> bool:
    import inspect

    return "models" in inspect.signature(fn).parameters


def test_runs_load_each_model_once(tmp_path, tiny_pixel_dir, monkeypatch):
    from rewardsds.app.models import ModelCache
    from rewardsds.commands import common
    from rewardsds.run2d import run_generate

    if not _takes_models(run_generate):
        pytest.skip("run_generate takes no models= (the commands.common.prepare hook) yet: runs load anew")
    loads = []
    real = common.load_prior
    monkeypatch.setattr(common, "load_prior", lambda spec, device: loads.append(spec) or real(spec, device))
    runner = Runner(ModelCache())
    for name in ("a", "b"):
        cfg = GenerateConfig(prompt="a red circle", prior=str(tiny_pixel_dir), reward=REWARD, n_noises=2, steps=2,
                             progress=False, device="cpu", threads=1, out=tmp_path / name)
        job = runner.start("s/generate", "generate", [Stage("g", run_generate, cfg)])
        assert job.finished.wait(300) and job.stages[0].status == "done", job.error
    assert loads == [str(tiny_pixel_dir)]
    assert runner.models.loaded() == [f"prior {tiny_pixel_dir} (cpu)", f"reward {REWARD} (cpu)"]


# --- what the page draws --------------------------------------------------------------------------------

def test_progress_files_each_step():
    p = Progress(total=10)
    previews = torch.rand(4, 3, 8, 8)
    p.update({"step": 0, "rewards": [[0.1, 0.4, 0.3, 0.2]], "weights": [[-0.1, 0.9, 0.9, -0.1]], "grad_norm": 2.0,
              "previews": previews, "x0": torch.zeros(1, 3, 8, 8)})
    p.update({"step": 1, "rewards": None, "weights": None, "grad_norm": 1.5, "x0": torch.ones(1, 3, 8, 8)})
    s = p.snapshot()
    assert (s.status, s.done, s.total) == ("running", 2, 10)
    assert s.history == [(0, pytest.approx(0.25), pytest.approx(0.4), 2.0), (1, None, None, 1.5)]
    tiles, rewards, weights, step = s.tiles
    assert tiles.shape == (4, 8, 8, 3) and tiles.dtype == np.uint8 and step == 0
    assert rewards == pytest.approx([0.1, 0.4, 0.3, 0.2]) and weights == pytest.approx([-0.1, 0.9, 0.9, -0.1])
    assert float(s.image.min()) == 1.0  # the latest x0, decoded from [-1, 1]
    # 3D: rewards per view and candidate, one shared row of weights; previews ordered view-major
    p3 = Progress(total=4)
    p3.update({"step": 0, "rewards": [[1.0, 3.0], [3.0, 5.0]], "weights": [0.9, -0.1], "grad_norm": 1.0,
               "previews": torch.rand(4, 3, 8, 8), "x0": torch.zeros(2, 3, 8, 8)})
    tiles, rewards, weights, _ = p3.snapshot().tiles
    assert tiles.shape[0] == 2 and rewards == [2.0, 4.0] and weights == [0.9, -0.1]


def test_views():
    assert views.model_to_rgb(torch.zeros(2, 3, 4, 4)).eq(0.5).all()
    rgb = views.model_to_rgb(torch.randn(1, 4, 8, 8))  # Stable Diffusion latents: an approximate preview
    assert rgb.shape == (1, 3, 8, 8) and 0 <= float(rgb.min()) and float(rgb.max()) <= 1
    im = np.zeros((32, 32, 3), np.uint8)
    up, down, zero = views.tile(im, 0.9), views.tile(im, -0.1), views.tile(im, 0.0)
    assert up.shape[0] >= 128 and tuple(up[0, 0]) == views.POSITIVE and tuple(down[0, 0]) == views.NEGATIVE
    assert tuple(zero[0, 0]) == views.ZERO and tuple(up[10, 10]) == (0, 0, 0)
    assert views.caption(77.4081, -0.1) == "r 77.41 · w -0.10"
    reward, grad = views.curves([(0, 1.0, 2.0, 3.0), (1, None, None, 2.0), (2, 1.5, 2.5, float("nan"))], 10)
    assert reward.shape == grad.shape == (220, 420, 3)
    assert (reward != 255).any(axis=2).sum() > 500  # axes, labels and lines drawn
    empty, _ = views.curves([], 10)
    assert empty.shape == (220, 420, 3)


# --- the command ----------------------------------------------------------------------------------------

def test_app_help_does_not_import_gradio(capsys):
    from rewardsds.cli import main

    had = "gradio" in sys.modules
    assert main(["app", "--help"]) == 0
    assert "--port" in capsys.readouterr().out
    assert had or "gradio" not in sys.modules


def test_app_without_gradio_is_one_line(monkeypatch, tmp_path, capsys):
    from rewardsds.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # as if the [app] extra were not installed
    assert main(["app", "--root", str(tmp_path / "app")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'rewardsds[app]'" in err and err.count("\n") == 1


def test_app_options_are_checked_before_gradio_loads(tmp_path):
    from rewardsds.app.config import AppConfig, check_app

    with pytest.raises(UserError, match=r"--port must be in \[0, 65535\]"):
        check_app(AppConfig(port=99999, root=tmp_path))
    with pytest.raises(UserError, match="unknown device"):
        check_app(AppConfig(device="tpu:x", root=tmp_path))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot write to the app's folder"):
        check_app(AppConfig(root=tmp_path / "file" / "app"))
    check_app(AppConfig(port=0, device="cpu", root=tmp_path / "app"))
    assert (tmp_path / "app").is_dir()
