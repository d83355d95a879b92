"""The 3D table's pure parts: run order, the summary's paired differences, and the two-table comparison."""

from __future__ import annotations

import json

import pytest

from tests._scripts import load_script

table3d = load_script("benchmarks/table3d.py")
compare3d = load_script("benchmarks/table3d_compare.py")

PROMPTS = ["a red cube", "a blue sphere", "a red cube to the left of a blue sphere"]


def _acc(values: list[float]) -> dict[tuple[str, int], float]:
    """(prompt, seed) -> judge3d accuracy, in the table's order (seed 0's prompts, then seed 1's)."""
    return dict(zip([(p, s) for s in (0, 1) for p in PROMPTS], values))


def _rows(acc: dict[tuple[str, int], float], method: str, seconds: float = 10.0) -> list[dict]:
    return [{"prompt": p, "seed": s, "method": method, "accuracy": a, "all_correct": float(a == 1.0),
             "duplicated": 0.0, "seconds": seconds, "objects": 2 if " of " in p else 1}
            for (p, s), a in acc.items()]


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n")
    return path


def test_runs_pair_both_methods_and_put_seeds_outermost(prompts_file, tmp_path):
    args = table3d.parse_args(["--prompts", str(prompts_file), "--out", str(tmp_path / "t"),
                               "--representation", "gaussians"])
    assert args.representation == "gaussians"
    order = [(p, s, m) for p, s, m, _ in table3d.runs(args)]
    assert order[:2] == [(PROMPTS[0], 0, "sds"), (PROMPTS[0], 0, "reward-sds")]
    assert [s for _, s, _ in order] == [0] * 6 + [1] * 6  # a table stopped early still holds whole seeds


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_worker_shares_cover_every_run_once_and_keep_pairs_together(prompts_file, tmp_path, n):
    args = table3d.parse_args(["--prompts", str(prompts_file), "--out", str(tmp_path / "t")])
    shares = [table3d.share(args, k, n) for k in range(n)]
    assert sorted(r for s in shares for r in s) == sorted(table3d.runs(args))
    for s in shares:  # each worker runs both methods of its (prompt, seed) pairs
        pairs = {(p, seed) for p, seed, _, _ in s}
        assert len(s) == 2 * len(pairs)


def test_unknown_representation_and_bad_prompt_are_refused(prompts_file, tmp_path, capsys):
    with pytest.raises(SystemExit):
        table3d.parse_args(["--prompts", str(prompts_file), "--representation", "mesh"])
    for bad_k in ("0", "nan", "inf"):
        with pytest.raises(SystemExit):
            table3d.parse_args(["--prompts", str(prompts_file), "--reward-steps", bad_k])
    assert table3d.parse_args(["--prompts", str(prompts_file), "--reward-steps", "1"]).reward_steps == 1.0
    bad = tmp_path / "bad.txt"
    bad.write_text("a red dragon\n")
    with pytest.raises(SystemExit):
        table3d.parse_args(["--prompts", str(bad)])
    assert "dragon" in capsys.readouterr().err  # the caption parser's message is the error


def test_reward_variant_names_a_known_reward_and_an_existing_folder(prompts_file, tmp_path, capsys):
    base = ["--prompts", str(prompts_file)]
    assert table3d.parse_args(base).reward is None  # the prior's own reward
    assert table3d.parse_args([*base, "--reward", f"world3d-clip@{tmp_path}"]).reward == f"world3d-clip@{tmp_path}"
    mix = f"0.5*world3d-clip@{tmp_path}+0.5*tests.helpers.rewards:redness"  # the --reward grammar, mixes too
    assert table3d.parse_args([*base, "--reward", mix]).reward == mix
    for bad, said in (("dragon-score", "unknown reward"), (f"world3d-clip@{tmp_path / 'none'}", "no such file"),
                      ("+world3d-clip", "empty term")):
        with pytest.raises(SystemExit):
            table3d.parse_args([*base, "--reward", bad])
        assert said in capsys.readouterr().err


def test_summary_reports_the_paired_difference(tmp_path):
    rows = _rows(_acc([0.5, 0.5, 0.25, 0.5, 0.5, 0.25]), "sds") + \
        _rows(_acc([0.5, 0.5, 0.75, 0.5, 0.5, 0.75]), "reward-sds")
    text = "\n".join(table3d.summarise(rows, ["sds", "reward-sds"]))
    assert "- two objects, judge3d facts: +50.0 [+50.0, +50.0] points (n = 2)" in text
    assert "- one object, judge3d facts: +0.0 [+0.0, +0.0] points (n = 4)" in text


def test_compare_pairs_only_runs_finished_in_both(tmp_path, capsys):
    a, b = tmp_path / "gauss", tmp_path / "field"
    a.mkdir()
    b.mkdir()
    acc_b = _acc([0.5, 0.5, 0.25, 0.5, 0.5, 0.25])
    acc_a = {k: v + 0.25 for k, v in acc_b.items() if k[1] == 0}  # A finished seed 0 only
    (a / "rows.json").write_text(json.dumps(_rows(acc_a, "sds", seconds=4.0)))
    (b / "rows.json").write_text(json.dumps(_rows(acc_b, "sds", seconds=10.0)))
    compare3d.main([str(a), str(b), "--methods", "sds"])
    out = capsys.readouterr().out
    assert "sds, all: gauss - field (n = 3 pairs)" in out
    assert "- judge3d facts: +25.0 [+25.0, +25.0] points" in out
    assert "- seconds per asset: -6.0 [-6.0, -6.0] s" in out


def test_compare_without_rows_is_one_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="report-only"):
        compare3d.main([str(tmp_path), str(tmp_path)])
