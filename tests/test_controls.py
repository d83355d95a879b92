"""The controls of the tables: equal compute (reward-* with --weighting mean) and equal time (a sweep's
--equal-time-of: the plain method with its steps scaled by the measured time ratio), from planning
through the store to eval's labels, cost ratios and gains, the Markdown and the HTML report."""

import json
import subprocess
from pathlib import Path

import _sweep_helpers as h
import pytest

from rewardsds.errors import UserError
from rewardsds.eval.aggregate import EQUAL_COMPUTE, EQUAL_TIME, Unit, aggregate, resolve_baseline, variant_labels
from rewardsds.eval.metrics import load_units
from rewardsds.eval.tables import format_markdown, format_tables
from rewardsds.sweep.config import SweepConfig
from rewardsds.sweep.runner import NOT_HASHED, plan, run_sweep
from rewardsds.sweep.store import Store, variant_key

ROOT = Path(__file__).resolve().parents[1]
SECONDS_PER_STEP = {"sds": 0.1, "reward-sds": 0.33}  # reward-sds takes 3.3x as long per step


def timed_execute(task: dict) -> dict:
    """fake_execute whose seconds are steps x the method's cost per step (picklable: spawned workers
    import this module by name)."""
    out = h.fake_execute(task)
    conf = task["config"]
    seconds = conf["steps"] * SECONDS_PER_STEP[conf["method"]]
    return {**out, "seconds": seconds, "prior_calls": conf["steps"] * (1 if conf["method"] == "sds" else 4)}


def timed_fail_on_blue(task: dict) -> dict:
    if "blue" in task["config"]["prompt"] and task["config"]["method"] == "reward-sds":
        raise RuntimeError("boom: the blue run broke")
    return timed_execute(task)


def _cfg(tmp_path, **kw):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(h.WORLD_PROMPTS))
    base = dict(prompts_file=prompts, out=tmp_path / "o", prior="unused", steps=3, methods=("sds", "reward-sds"),
                progress=False, workers=1, retries=0, equal_time_of="reward-sds")
    return SweepConfig(**{**base, **kw})


# --- equal time: the sweep --------------------------------------------------------------------------


def test_equal_time_control_is_measured_run_and_kept(tmp_path, capsys):
    cfg = _cfg(tmp_path)
    r = run_sweep(cfg, timed_execute)
    assert (r["runs"], r["done"], r["failed"], r["ran"]) == (6, 6, 0, 6)
    assert r["equal_time"] == {"of": "reward-sds", "ratio": 3.3, "source": "measured", "steps": 10}
    assert "sds x3.3 (measured) = 10 steps" in capsys.readouterr().err
    with Store(cfg.out / "sweep.db") as s:
        runs = s.runs()
        controls = [x for x in runs if "equal_time" in x.config]
        assert len(controls) == 2 and {x.method for x in controls} == {"sds"}
        assert {x.config["steps"] for x in controls} == {10}
        target = next(x for x in runs if x.method == "reward-sds")
        assert controls[0].config["equal_time"] == {"of": "reward-sds", "target": variant_key(target.config),
                                                    "base_steps": 3}
        kept = [dict(x) for x in s.db.execute("SELECT pair, ratio, n FROM equal_time")]
        assert len(kept) == 1 and kept[0]["ratio"] == pytest.approx(3.3) and kept[0]["n"] == 2
    # a rerun reads the kept ratio: nothing runs, nothing is planned anew
    r2 = run_sweep(cfg, timed_execute)
    assert (r2["runs"], r2["ran"], r2["equal_time"]["steps"]) == (6, 0, 10)


def test_plain_runs_keep_their_hashes(tmp_path):
    """--equal-time-of adds runs; it changes nothing in the others' configs (so no finished run reruns)."""
    prompts = list(h.WORLD_PROMPTS)
    with_control = plan(_cfg(tmp_path), prompts)
    without = plan(_cfg(tmp_path, equal_time_of=None), prompts)
    assert [s.config_hash for s in with_control] == [s.config_hash for s in without]
    assert all("equal_time" not in s.config and not set(NOT_HASHED) & set(s.config) for s in without)
    mean = plan(_cfg(tmp_path, equal_time_of=None, weighting="mean"), prompts)
    sds = [s.config_hash for s in mean if s.method == "sds"]
    assert sds == [s.config_hash for s in without if s.method == "sds"]  # plain methods ignore --weighting
    assert {s.config_hash for s in mean if s.method == "reward-sds"}.isdisjoint(
        s.config_hash for s in without if s.method == "reward-sds")


def test_control_waits_until_every_timed_run_is_done(tmp_path, capsys):
    cfg = _cfg(tmp_path)
    r = run_sweep(cfg, timed_fail_on_blue)
    assert (r["runs"], r["failed"], r["equal_time"]) == (4, 1, None)
    assert "1 runs of sds / reward-sds are not done" in capsys.readouterr().err
    with Store(cfg.out / "sweep.db") as s:
        assert s.equal_time("anything") is None and not [x for x in s.runs() if "equal_time" in x.config]
    r = run_sweep(cfg, timed_execute)  # the failed run retried: now the control is measured and run
    assert (r["runs"], r["done"], r["ran"], r["equal_time"]["steps"]) == (6, 6, 3, 10)


def test_given_ratio_replaces_the_measurement(tmp_path):
    cfg = _cfg(tmp_path, equal_time_ratio=2.0)
    r = run_sweep(cfg, timed_execute)
    assert r["equal_time"] == {"of": "reward-sds", "ratio": 2.0, "source": "given", "steps": 6}
    with Store(cfg.out / "sweep.db") as s:
        assert {x.config["steps"] for x in s.runs() if "equal_time" in x.config} == {6}


@pytest.mark.parametrize("kw, message", [
    ({"methods": ("reward-sds",)}, "give both, e.g. --methods sds reward-sds"),
    ({"equal_time_of": None, "equal_time_ratio": 2.0}, "--equal-time-ratio needs --equal-time-of"),
    ({"equal_time_ratio": 0.0}, "--equal-time-ratio must be in"),
    ({"equal_time_ratio": float("nan")}, "--equal-time-ratio must be a finite number"),
])
def test_bad_equal_time_options(tmp_path, kw, message):
    with pytest.raises(UserError, match=message):
        run_sweep(_cfg(tmp_path, **kw), timed_execute)
    assert not (tmp_path / "o").exists()


def test_cli_parses_the_options():
    import tyro

    cfg = tyro.cli(SweepConfig, args=["p.txt", "--methods", "vsd", "reward-vsd", "--equal-time-of", "reward-vsd",
                                      "--equal-time-ratio", "2", "--weighting", "mean"])
    assert (cfg.equal_time_of, cfg.equal_time_ratio, cfg.weighting) == ("reward-vsd", 2.0, "mean")


# --- eval / report ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def controlled(tmp_path_factory):
    """A finished sweep with sds, reward-sds, the equal-time control and the equal-compute control, scored."""
    tmp = tmp_path_factory.mktemp("controls")
    cfg = _cfg(tmp, seeds=(0, 1))
    run_sweep(cfg, timed_execute)
    run_sweep(_cfg(tmp, seeds=(0, 1), methods=("reward-sds",), equal_time_of=None, weighting="mean"),
              timed_execute)
    score = {"sds": 50.0, "reward-sds": 70.0}
    with Store(cfg.out / "sweep.db") as s:
        values = []
        for x in s.runs("done"):
            v = score[x.method] + (5.0 if "equal_time" in x.config else 0.0) + x.seed \
                - (8.0 if x.config.get("weighting") == "mean" else 0.0)
            values.append((x.id, "judge", v))
        s.set_metrics(values)
        units, labels = load_units(s)
    return cfg.out, units, labels


def test_labels_say_what_each_control_is(controlled):
    _, units, _ = controlled
    by_label = {u.variant: u for u in units}
    et, ec = "sds ×3.33 steps (equal time to reward-sds)", "reward-sds [weighting=mean] (equal compute)"
    assert set(by_label) == {"sds", "reward-sds [weighting=top-bottom]", ec, et}
    assert (by_label[et].control, by_label[et].control_of) == (EQUAL_TIME, "reward-sds [weighting=top-bottom]")
    assert (by_label[ec].control, by_label[ec].control_of) == (EQUAL_COMPUTE, "reward-sds [weighting=top-bottom]")
    assert by_label["sds"].control is None
    assert resolve_baseline("sds", by_label) == "sds"  # the control does not make the baseline ambiguous


def test_aggregate_reports_cost_ratios_and_gains(controlled):
    _, units, _ = controlled
    agg = aggregate(units, ["judge"], baseline="sds", b=200)
    order = [r["variant"] for r in agg["cost"]]
    assert order == ["sds", "reward-sds [weighting=top-bottom]", "sds ×3.33 steps (equal time to reward-sds)",
                     "reward-sds [weighting=mean] (equal compute)"]  # controls after the methods
    cost = {r["variant"]: r["seconds"]["mean"] for r in agg["cost"]}
    assert cost["sds"] == pytest.approx(0.3) and cost[order[2]] == pytest.approx(1.0)
    rows = {r["variant"]: r for r in agg["controls"]}
    t = rows[order[2]]
    assert t["control"] == EQUAL_TIME and t["of"] == order[1]
    assert t["seconds_ratio"] == pytest.approx(1.0 / 0.99) and t["prior_calls_ratio"] == pytest.approx(10 / 12)
    assert t["gain"]["judge"]["mean"] == pytest.approx(15.0)  # reward-sds 70 vs control 55, paired
    c = rows[order[3]]
    assert c["seconds_ratio"] == pytest.approx(1.0) and c["prior_calls_ratio"] == pytest.approx(1.0)
    assert c["gain"]["judge"]["mean"] == pytest.approx(8.0)
    json.dumps(agg)  # eval.json


def test_tables_show_the_control_rows(controlled):
    _, units, _ = controlled
    agg = aggregate(units, ["judge"], baseline="sds", b=200)
    md = format_markdown(agg)
    assert "| sds ×3.33 steps (equal time to reward-sds) | 4 |" in md
    assert "| control | for | s / image (ratio) | prior calls / image (ratio) | gain judge |" in md
    assert "| sds ×3.33 steps (equal time to reward-sds) | reward-sds [weighting=top-bottom] | 1.0 vs 1.0 (×1.01)" in md
    text = format_tables(agg)
    assert "[equal compute of reward-sds [weighting=top-bottom]]: 1.0 vs 1.0 (×1.00) s" in text
    assert "gain judge +15" in text


def test_eval_and_report_through_the_cli(controlled):
    from rewardsds.cli import main

    out, _, _ = controlled
    assert main(["report", str(out), "--out", str(out / "r.html"), "--bootstrap", "100"]) == 0
    html = (out / "r.html").read_text()
    assert '<table class="controls">' in html and "sds ×3.33 steps (equal time to reward-sds)" in html
    assert "reward-sds [weighting=mean] (equal compute)" in html


def test_equal_compute_label_without_other_weightings():
    labels = variant_labels({1: {"method": "reward-sds", "weighting": "mean", "prompt": "a", "seed": 0},
                             2: {"method": "sds", "prompt": "a", "seed": 0}})
    assert labels == {1: "reward-sds [weighting=mean] (equal compute)", 2: "sds"}


def test_controls_without_their_method_have_no_row():
    u = [Unit("sds ×2 steps (equal time to reward-sds)", "a", 0, {"judge": 1.0}, 1.0, 2.0, EQUAL_TIME, None)]
    assert aggregate(u, ["judge"], b=10)["controls"] == []


# --- the tables script ----------------------------------------------------------------------------


def test_world_tables_runs_both_controls(tmp_path):
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "world_tables.sh")], capture_output=True, text=True,
                       env={"RS": "echo", "PY": "echo", "OUT": str(tmp_path / "out"), "PATH": "/usr/bin:/bin",
                            "TABLES": "table1 vsd"})
    assert r.returncode == 0, r.stderr
    sweeps = [ln for ln in r.stdout.splitlines() if ln.startswith("sweep")]
    table1 = [ln for ln in sweeps if "/table1 " in ln]
    assert any("--methods sds reward-sds --reward world-clip --equal-time-of reward-sds" in ln for ln in table1)
    assert any("--methods reward-sds --reward world-clip --weighting mean" in ln for ln in table1)
    assert any("/vsd " in ln and "--methods reward-vsd --reward world-clip --weighting mean" in ln for ln in sweeps)
