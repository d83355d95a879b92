"""`rewardsds world-eval` with bad options: one line on stderr, exit code 2, nothing loaded or written."""

from __future__ import annotations

import pytest

from rewardsds.cli import main
from rewardsds.world import evaluate


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working folder; evaluating anything (loading a model) fails the test."""

    def must_not_run(*args, **kwargs):
        raise AssertionError("world-eval started evaluating before it validated its options")

    for name in ("eval_prior", "eval_clip", "eval_aesthetic"):
        monkeypatch.setattr(evaluate, name, must_not_run)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "a_file").write_text("")
    return tmp_path


BAD = {
    "n zero": (["--n", "0"], "--n"),
    "n one": (["--n", "1"], "--n"),
    "cfg nan": (["--cfg", "nan"], "--cfg"),
    "cfg inf": (["--cfg", "inf"], "--cfg"),
    "cfg negative": (["--cfg=-1"], "--cfg"),
    "steps zero": (["--steps", "0"], "--steps"),
    "steps too many": (["--steps", "1001"], "--steps"),
    "batch zero": (["--batch", "0"], "--batch"),
    "seed negative": (["--seed=-1"], "--seed"),
    "unknown part": (["--parts", "prior", "judge"], "--parts"),
    "no part": (["--parts"], "--parts"),
    "out is a folder": (["--out", "folder"], "--out"),
    "out under a file": (["--out", "a_file/figures.json"], "--out"),
    "samples png is a folder": (["--samples-png", "folder"], "--samples-png"),
    "prior is not a prior folder": (["--prior", "folder"], "--prior"),
    "prior does not exist": (["--prior", "no_such_prior"], "--prior"),
}


@pytest.mark.parametrize("args, option", BAD.values(), ids=BAD.keys())
def test_bad_option_is_one_line_and_exit_2(workdir, capsys, args, option):
    before = sorted(p.name for p in workdir.rglob("*"))
    code = main(["world-eval", "--out", "figures.json", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("rewardsds world-eval: error: ") and option in err, err
    assert "Traceback" not in err
    assert sorted(p.name for p in workdir.rglob("*")) == before  # no figures.json, no samples


def test_check_inputs_accepts_the_defaults():
    evaluate.check_inputs(evaluate.WorldEvalConfig())
    with pytest.raises(ValueError, match="--parts"):
        evaluate.check_inputs(evaluate.WorldEvalConfig(parts=()))


def test_bad_prior_folder_is_a_value_error(tmp_path):
    (tmp_path / "model_index.json").write_text("{}")  # no unet/
    with pytest.raises(ValueError, match="--prior .* unet/"):
        evaluate.check_inputs(evaluate.WorldEvalConfig(prior=tmp_path))
    (tmp_path / "unet").mkdir()
    evaluate.check_inputs(evaluate.WorldEvalConfig(prior=tmp_path))  # the layout is enough to pass
