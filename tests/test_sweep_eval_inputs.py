"""Bad input to `rewardsds sweep`, `eval` and `report`, through the CLI: exit code 2, exactly one line on
stderr, no traceback, nothing written or removed in the folders that exist, and no run, model or
scoring started (every case fails in validation)."""

from pathlib import Path

import _sweep_helpers as h
import pytest

from rewardsds.cli import main

BIG = str(2**63)  # one past SQLite's INTEGER and numpy's seed range


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """A prompts file, a finished (fake) sweep, and guards that fail the test if work starts."""
    import rewardsds.eval.metrics as metrics
    import rewardsds.report.html as html
    import rewardsds.sweep.runner as runner

    h.make_fake_sweep(tmp_path / "sweep", seeds=(0,))

    def started(*args, **kwargs):
        raise AssertionError("validation should have failed before this")

    for mod, name in ((runner, "make_backend"), (runner, "plan"), (metrics, "score_reward"),
                      (metrics, "score_judge"), (metrics, "readable_runs"), (html, "collect")):
        monkeypatch.setattr(mod, name, started)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\n")
    (tmp_path / "empty.txt").write_text("# only a comment\n")
    (tmp_path / "a_folder").mkdir()
    return tmp_path


def _sweep(*extra):
    return ["sweep", "{tmp}/prompts.txt", "--out", "{tmp}/sweep", "--no-progress", *extra]


CASES = {
    # sweep: its own options (the forwarded distillation options are config.py's)
    "sweep-negative-seed": _sweep("--seeds", "0", "-1"),
    "sweep-seed-too-big": _sweep("--seeds", BIG),
    "sweep-batch-0": _sweep("--batch", "0"),
    "sweep-workers-negative": _sweep("--workers", "-1"),
    "sweep-retries-negative": _sweep("--retries", "-1"),
    "sweep-lease-nan": _sweep("--lease-s", "nan"),
    "sweep-lease-shorter-than-heartbeat": _sweep("--lease-s", "5"),
    "sweep-ray-gpus-negative": _sweep("--ray-gpus", "-0.5"),
    "sweep-ray-gpus-inf": _sweep("--ray-gpus", "inf"),
    "sweep-ray-empty": _sweep("--ray", ""),
    "sweep-edit-method": _sweep("--methods", "sds", "reward-dds"),
    "sweep-prompts-missing": ["sweep", "{tmp}/nowhere.txt", "--out", "{tmp}/sweep"],
    "sweep-prompts-is-a-folder": ["sweep", "{tmp}/a_folder", "--out", "{tmp}/sweep"],
    "sweep-no-prompts": ["sweep", "{tmp}/empty.txt", "--out", "{tmp}/sweep"],
    # eval
    "eval-bootstrap-0": ["eval", "{tmp}/sweep", "--bootstrap", "0"],
    "eval-bootstrap-huge": ["eval", "{tmp}/sweep", "--bootstrap", "1000000000"],
    "eval-ci-seed-negative": ["eval", "{tmp}/sweep", "--ci-seed", "-3"],
    "eval-ci-seed-too-big": ["eval", "{tmp}/sweep", "--ci-seed", BIG],
    "eval-batch-size-0": ["eval", "{tmp}/sweep", "--batch-size", "0"],
    "eval-no-metrics": ["eval", "{tmp}/sweep", "--metrics", " , "],
    "eval-device-empty": ["eval", "{tmp}/sweep", "--device", ""],
    "eval-metric-not-a-reward": ["eval", "{tmp}/sweep", "--metrics", "judge,os:system"],
    "eval-metric-missing-module": ["eval", "{tmp}/sweep", "--metrics", "no_such_module_xyz:score"],
    "eval-not-a-sweep": ["eval", "{tmp}/a_folder"],
    # report
    "report-bootstrap-negative": ["report", "{tmp}/sweep", "--bootstrap", "-1"],
    "report-ci-seed-too-big": ["report", "{tmp}/sweep", "--ci-seed", BIG],
    "report-gallery-prompts-negative": ["report", "{tmp}/sweep", "--gallery-prompts", "-2"],
    "report-gallery-seed-negative": ["report", "{tmp}/sweep", "--gallery-seed", "-1"],
    "report-out-is-a-folder": ["report", "{tmp}/sweep", "--out", "{tmp}/a_folder"],
}


@pytest.mark.parametrize("argv", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_one_line_and_exit_2(folders, capsys, argv):
    before = _snapshot(folders)
    code = main([a.format(tmp=folders) for a in argv])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured
    assert "Traceback" not in captured.err + captured.out
    assert len(lines) == 1 and lines[0].startswith(f"rewardsds {argv[0]}: error: "), lines
    assert _snapshot(folders) == before
