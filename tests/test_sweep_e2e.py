"""sweep -> eval -> report end to end through the CLI (2 prompts x 2 methods x 1 seed, 2 steps), on the
shipped world prior when it exists and otherwise on a tiny random prior in the same folder layout;
plus the Ray backend on a local one-CPU Ray instance."""

import json
import re
import sys

import _sweep_helpers as h
import pytest

from rewardsds.cli import main
from rewardsds.errors import UserError
from rewardsds.sweep.config import SweepConfig
from rewardsds.sweep.runner import run_sweep
from rewardsds.sweep.store import Store
from rewardsds.world import paths

REWARD = "_sweep_helpers:redness"  # importable in the workers: spawn copies sys.path, tests/ included


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    if (paths.prior_dir() / "unet").is_dir():
        return "world"
    return str(h.build_tiny_prior(tmp_path_factory.mktemp("tiny_prior")))


@pytest.fixture(scope="module")
def swept(prior, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    prompts = tmp / "prompts.txt"
    prompts.write_text("# two world prompts\n" + "\n".join(h.WORLD_PROMPTS) + "\n")
    out = tmp / "sweep"
    argv = ["sweep", str(prompts), "--methods", "sds", "reward-sds", "--seeds", "0", "--prior", prior,
            "--reward", REWARD, "--steps", "2", "--n-noises", "2", "--workers", "2", "--device", "cpu",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    return argv, out


def test_sweep_runs_every_run_into_its_folder(swept):
    _, out = swept
    with Store(out / "sweep.db") as s:
        runs = s.runs()
        assert len(runs) == 4 and {r.status for r in runs} == {"done"}
        assert {(r.prompt, r.method) for r in runs} == {(p, m) for p in h.WORLD_PROMPTS for m in ("sds", "reward-sds")}
        for r in runs:
            d = out / r.run_dir
            summary = json.loads((d / "summary.json").read_text())
            assert summary["steps"] == 2 and summary["method"] == r.method and summary["prompts"] == [r.prompt]
            assert (d / "image_raw.png").exists() and len((d / "log.jsonl").read_text().splitlines()) == 2
            assert r.seconds is not None and r.prior_calls == summary["prior_calls"] > 0


def test_rerun_is_a_no_op(swept):
    argv, out = swept
    with Store(out / "sweep.db") as s:
        before = [tuple(r) for r in s.db.execute("SELECT id, status, finished_at FROM runs ORDER BY id")]
    assert main(argv) == 0
    with Store(out / "sweep.db") as s:
        assert [tuple(r) for r in s.db.execute("SELECT id, status, finished_at FROM runs ORDER BY id")] == before


def test_eval_then_report(swept):
    _, out = swept
    assert main(["eval", str(out), "--metrics", f"judge,{REWARD}", "--bootstrap", "100", "--device", "cpu"]) == 0
    with Store(out / "sweep.db") as s:
        scores = s.metrics()
        done = [r.id for r in s.runs("done")]
    assert all(set(scores[i]) == {"judge", "judge-all", REWARD} for i in done)
    assert all(0 <= scores[i]["judge"] <= 100 for i in done)
    agg = json.loads((out / "eval.json").read_text())
    assert agg["baseline"] == "sds" and set(agg["metrics"]) == {"judge", "judge-all", REWARD}
    assert main(["report", str(out), "--out", str(out / "r.html")]) == 0
    html = (out / "r.html").read_text()
    assert len(re.findall(r'<img src="data:image/png;base64,', html)) == 4
    assert len(re.findall(r'<table class="metric"', html)) == 3


def test_cli_bad_input_exits_2(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a sweep folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2


def test_missing_ray_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    cfg = SweepConfig(prompts_file=_write(tmp_path), out=tmp_path / "o", ray="auto",
                      prior="unused", progress=False)
    with pytest.raises(UserError, match=r"pip install 'rewardsds\[ray\]'"):
        run_sweep(cfg, h.fake_execute)


def _write(tmp_path):
    p = tmp_path / "prompts.txt"
    p.write_text("\n".join(h.WORLD_PROMPTS))
    return p


def test_ray_backend_on_a_local_instance(tmp_path):
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(h)  # Ray workers cannot import the tests folder by name
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        cfg = SweepConfig(prompts_file=_write(tmp_path), out=tmp_path / "o", ray="auto", prior="unused",
                          steps=2, progress=False, retries=0)
        r = run_sweep(cfg, h.fake_execute)
        assert (r["done"], r["ran"], r["failed"]) == (4, 4, 0)
        assert run_sweep(cfg, h.fake_execute)["ran"] == 0
        r = run_sweep(SweepConfig(**{**cfg.__dict__, "seeds": (0, 1)}), h.fail_on_blue)
        assert (r["done"], r["failed"], r["ran"]) == (6, 2, 4)
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(h)
