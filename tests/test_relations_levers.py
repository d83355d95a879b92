"""benchmarks/relations_levers.py: variant labels, the start image read back from init.png, the table."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from _scripts import load_script

from rewardsds import media
from rewardsds.world.scenes import render, sample_scene

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rl():
    return load_script("benchmarks/relations_levers.py")


def _run(folder: Path, name: str, conf: dict, prompt: str, facts: dict, start=None) -> None:
    run = folder / "runs" / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(conf))
    acc = sum(facts.values()) / len(facts)
    (run / "summary.json").write_text(json.dumps({"prompts": [prompt], "seconds": 1.0,
                                                  "judge": [{"accuracy": acc, "facts": facts}]}))
    if start is not None:  # as run2d writes it: 8x nearest upscale in a 2-px white frame
        media.save_png(run / "init.png", media.grid(media.to_uint8(start, 8)))


def test_labels_name_the_levers(rl):
    assert rl.label({"method": "sds", "cfg": 20.0, "t_max": 0.98}) == "sds cfg=20 init=colour"
    assert rl.label({"method": "sds", "cfg": 7.5, "init_samples": 4}) == "sds cfg=7.5 init=first-of-4"
    assert rl.label({"method": "reward-sds", "cfg": 7.5, "t_max": 0.5, "init_samples": 4}) == \
        "reward-sds cfg=7.5 t_max=0.5 init=best-of-4"
    # a shared run folder also holds Table 1's cross-evaluation and controls: they must not merge
    assert rl.label({"method": "reward-sds", "cfg": 7.5, "reward": "world-aesthetic", "weighting": "mean"}) == \
        "reward-sds cfg=7.5 init=colour reward=world-aesthetic weighting=mean"
    assert rl.label({"method": "sds", "cfg": 7.5, "steps": 412}) == "sds cfg=7.5 init=colour steps=412"


def test_two_runs_of_one_variant_and_unit_are_an_error(rl, tmp_path, capsys):
    prompt = "a red circle"
    for name in ("r1", "r2"):
        _run(tmp_path, name, {"method": "sds", "cfg": 20.0, "seed": 0, "lr": 0.01 if name == "r1" else 0.02},
             prompt, {"a": True})
    assert rl.main([str(tmp_path)]) == 2 and "label misses" in capsys.readouterr().err


def test_the_start_is_read_back_from_init_png_and_judged(rl, tmp_path):
    scene = sample_scene(random.Random(3), 2)
    prompt = scene.caption(random.Random(0))
    img = torch.from_numpy(render(scene, 32).transpose(2, 0, 1).copy()).float()
    ok = {"a": True, "b": True}
    _run(tmp_path, "r1", {"method": "sds", "cfg": 20.0, "seed": 0}, prompt, {"a": True, "b": False})
    _run(tmp_path, "r2", {"method": "reward-sds", "cfg": 20.0, "seed": 0, "init_samples": 4}, prompt, ok, img)
    acc, every = rl.start_verdict(tmp_path / "runs" / "r2", prompt)
    assert acc == 1.0 and every  # an exact render of the caption's scene, read back through the upscale
    v = rl.collect([tmp_path])
    assert v["reward-sds cfg=20 init=best-of-4"]["start"] == {(prompt, 0): 100.0}
    text = rl.table(v, "sds cfg=20 init=colour")
    assert "| reward-sds cfg=20 init=best-of-4 | 1 | 100.0 [100.0, 100.0] |" in text and "+50.0" in text
    assert rl.main([str(tmp_path / "nothing")]) == 2
