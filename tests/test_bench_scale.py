"""Smoke test of scripts/bench_scale.py: its whole code path (build from configuration, save in diffusers'
layout, load through `DiffusersPrior.from_pretrained`, every measurement, the report, `rewardsds generate`)
on --tiny models, in seconds. The full-size figures live in benchmarks/results/bench_scale/."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch
from _scripts import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_scale.py"


@pytest.fixture(scope="module")
def bench():
    return load_script("scripts/bench_scale.py")


@pytest.fixture
def restore_threads():
    """The script sets torch's thread count and the CLI's thread variables; give the next tests theirs back."""
    threads, env = torch.get_num_threads(), dict(os.environ)
    yield
    torch.set_num_threads(threads)
    os.environ.clear()
    os.environ.update(env)


def test_tiny_run_prints_every_figure(bench, tmp_path, capsys, restore_threads):
    models, out_json = tmp_path / "models", tmp_path / "figures.json"
    assert bench.main(["--tiny", "--folder", str(models), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    for row in ("sds ", "reward-sds paper-small ", "reward-sds default ", "official 2D default ",
                "official 2D paper-small ", "official 3D paper-small ", "reward-vsd LoRA r4 N=4 ",
                "reward-sds paper-full from-t (EXTRAPOLATED)", "official paper-full 2D (EXTRAPOLATED)"):
        assert f"\n{row}" in out, row
    assert "VSD particle model: COPIES the whole U-Net" in out or "shares the prior's U-Net" in out
    assert "peak GPU memory of paper-full <= 24 GB: not measured (no GPU)" in out
    if importlib.util.find_spec("ImageReward") is None:
        assert "ImageReward: not measured (package absent" in out
    assert "CLI end to end: rewardsds generate" in out and "\n  ok: wall" in out

    figures = json.loads(out_json.read_text())
    rows = {r["name"]: r for r in figures["engine"]["rows"]}
    assert (rows["sds"]["per_step"]["unet"]["calls"], rows["sds"]["per_step"]["unet"]["samples"]) == (1, 2)
    assert rows["reward-sds default"]["per_step"]["unet"]["calls"] == 1  # the call at t is shared, S=1
    assert rows["reward-sds default"]["per_step"]["unet"]["samples"] == 8
    assert rows["official 2D default"]["per_step"]["unet"]["calls"] == 2  # preview + the separate pass at t
    assert rows["official 3D paper-small"]["per_step"]["unet"]["calls"] == 4  # twice per candidate
    assert all(r["peak_rss_gib"] > 0 for r in rows.values())
    assert {t["target"] for t in figures["targets"]} >= {"default RewardSDS (N=4, S=1) <= 3x SDS per step",
                                                         "never slower than the official pattern at identical N, S, K"}

    # the saved folder is Stable Diffusion's layout and loads through the loader users call
    from rewardsds.priors.diffusers_prior import DiffusersPrior

    prior = DiffusersPrior.from_pretrained(models / "sd21")
    assert prior.family == "StableDiffusionPipeline" and prior.vae is not None
    assert prior.tokenizer.model_max_length == 77 and prior.embed(["a photo of a corgi"]).cond.shape[1] == 77
    assert prior.prediction_type == "epsilon" and prior.scheduler.config.steps_offset == 1


def test_full_size_configs_have_the_published_sizes(bench):
    """The configurations the full-size run builds, instantiated on the meta device (no memory, no weights)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModel

    def millions(model):
        return round(sum(p.numel() for p in model.parameters()) / 1e6)

    with torch.device("meta"):
        assert millions(UNet2DConditionModel(**bench.SD21_UNET)) == 866  # SD-2.1-base: 865.9M
        assert millions(AutoencoderKL(**bench.SD21_VAE)) == 84
        assert millions(CLIPTextModel(CLIPTextConfig(**bench.SD21_TEXT))) == 340  # OpenCLIP-H text, 23 layers
        assert millions(CLIPModel(CLIPConfig(**bench.CLIP_L14))) == 428  # CLIP ViT-L/14


def test_paper_full_call_counts(bench):
    """The extrapolation's U-Net calls per step: ours S calls ("from-t") or the paper's grid below t
    ("global"); the official 2D code one more (the separate pass at t), 3D that pass per candidate."""
    e = bench.expected_calls(10, 15)["calls"]
    assert e["ours from-t"] == 15
    assert 7 < e["ours global"] < 9 and e["official 2D"] == pytest.approx(e["ours global"] + 1, abs=0.2)
    assert e["official 3D"] == pytest.approx(10 * e["ours global"], rel=0.1)


def test_help(bench, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--help"])
    assert exc.value.code == 0
    assert "--full-steps" in capsys.readouterr().out
