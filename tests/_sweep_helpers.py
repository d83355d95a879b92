"""Shared pieces of the sweep / eval / report tests: a tiny random world-style prior and a callable
reward (both from `_builders`, re-exported here), fake run executors (picklable: spawned workers import
this module by name, since pytest puts tests/ on sys.path and spawn copies sys.path into the children)
and a fake finished sweep."""

from __future__ import annotations

import json
import os
import uuid
import zlib
from pathlib import Path

import numpy as np
from _builders import build_tiny_world_prior as build_tiny_prior  # noqa: F401 (re-exported)
from _builders import redness  # noqa: F401 (`--reward _sweep_helpers:redness` in the sweep tests)

WORLD_PROMPTS = ("a red circle", "a blue square to the left of a yellow triangle")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def fake_outputs(run_dir: Path, config: dict, seconds: float = 0.01, prior_calls: int = 2) -> dict:
    """What run_generate leaves behind, minus the work (and torch): a tiny image, a log, summary.json last."""
    import io

    from PIL import Image

    rng = np.random.default_rng(zlib.crc32(f'{config["prompt"]}|{config["method"]}|{config["seed"]}'.encode()))
    buf = io.BytesIO()
    Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(buf, format="PNG")
    _atomic_write(run_dir / "image_raw.png", buf.getvalue())
    lines = []
    for step in range(3):
        rewards = [[float(step + i) for i in range(2)]] if config["method"].startswith("reward-") else None
        lines.append(json.dumps({"step": step, "t": 500, "grad_norm": 1.0 / (step + 1), "rewards": rewards,
                                 "seconds": 0.001, "prior_calls": 1}))
    _atomic_write(run_dir / "log.jsonl", ("\n".join(lines) + "\n").encode())
    summary = {"prompts": [config["prompt"]], "method": config["method"], "steps": 3, "prior_calls": prior_calls,
               "seconds": seconds, "final_reward": None}
    _atomic_write(run_dir / "summary.json", json.dumps(summary).encode())
    return summary


def fake_execute(task: dict) -> dict:
    """Stands in for a real run: writes the run folder and counts calls in <run_dir>/../../calls/."""
    run_dir = Path(task["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    calls = run_dir.parent.parent / "calls"
    calls.mkdir(exist_ok=True)
    (calls / f"{run_dir.name}.{uuid.uuid4().hex}").write_text("x")
    summary = fake_outputs(run_dir, task["config"])
    return {"ok": True, "seconds": summary["seconds"], "prior_calls": summary["prior_calls"]}


def crash_on_blue(task: dict) -> dict:
    """Like fake_execute, but the worker process dies abruptly (as if killed) on prompts with 'blue'."""
    if "blue" in task["config"]["prompt"]:
        os._exit(17)
    return fake_execute(task)


def fail_on_blue(task: dict) -> dict:
    """Like fake_execute, but raises (a bug in the run) on prompts with 'blue'."""
    if "blue" in task["config"]["prompt"]:
        raise RuntimeError("boom: the blue run broke")
    return fake_execute(task)


def calls_per_run(out: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    calls = Path(out) / "calls"
    for f in calls.iterdir() if calls.exists() else ():
        key = f.name.split(".")[0]
        counts[key] = counts.get(key, 0) + 1
    return counts


def make_fake_sweep(out: Path, prompts=WORLD_PROMPTS, methods=("sds", "reward-sds"), seeds=(0, 1),
                    score=None) -> Path:
    """A finished sweep folder without any process or model: planned like the real one, run folders
    from `fake_outputs`, rows done, and scores from ``score(prompt, method, seed) -> {metric: value}``."""
    from rewardsds.sweep.config import SweepConfig
    from rewardsds.sweep.runner import plan
    from rewardsds.sweep.store import Store

    cfg = SweepConfig(prompts_file=Path(), methods=methods, seeds=seeds, out=out, steps=3, prior="fake")
    specs = plan(cfg, list(prompts))
    with Store(out / "sweep.db") as store:
        ids = store.add_runs(specs)
        values = []
        for i, spec in zip(ids, specs):
            (out / spec.run_dir).mkdir(parents=True, exist_ok=True)
            calls = 3 if spec.method == "sds" else 12
            fake_outputs(out / spec.run_dir, spec.config, seconds=0.5 * calls, prior_calls=calls)
            store.claim([i], "test:0:x", 60)
            store.finish(i, 0.5 * calls, calls)
            if score is not None:
                values += [(i, m, v) for m, v in score(spec.prompt, spec.method, spec.seed).items()]
        store.set_metrics(values)
    return out


SCORED: list[int] = []  # images scored by `counting_reward` in this process


def counting_reward(images, prompts):
    """A reward that records how many images it scored (eval must not rescore stored scores)."""
    SCORED.append(int(images.shape[0]))
    return images.mean((1, 2, 3)) * 100
