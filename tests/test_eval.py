"""`rewardsds eval` on a fake finished sweep: which runs get which scores, incremental, bad input."""

import json

import _sweep_helpers as h
import numpy as np
import pytest
from PIL import Image

from rewardsds.cli import main
from rewardsds.eval.metrics import read_tiles
from rewardsds.sweep.store import Store

NOT_WORLD = "a photo of a cat"  # the judge cannot grade it


@pytest.fixture
def sweep(tmp_path):
    return h.make_fake_sweep(tmp_path / "sweep", prompts=(*h.WORLD_PROMPTS, NOT_WORLD), seeds=(0,))


def test_judge_scores_world_prompts_only_and_rewards_score_all(sweep):
    h.SCORED.clear()
    assert main(["eval", str(sweep), "--metrics", "judge,_sweep_helpers:counting_reward", "--bootstrap", "50",
                 "--device", "cpu"]) == 0
    with Store(sweep / "sweep.db") as s:
        runs, scores = s.runs(), s.metrics()
    for r in runs:
        expected = {"_sweep_helpers:counting_reward"} | ({"judge", "judge-all"} if r.prompt != NOT_WORLD else set())
        assert set(scores[r.id]) == expected
        img = np.asarray(Image.open(sweep / r.run_dir / "image_raw.png"), dtype=np.float32) / 255
        assert scores[r.id]["_sweep_helpers:counting_reward"] == pytest.approx(img.mean() * 100, rel=1e-5)
    assert sum(h.SCORED) == 6  # 3 prompts x 2 methods, each scored once
    agg = json.loads((sweep / "eval.json").read_text())
    assert [r["variant"] for r in agg["metrics"]["judge"]] == ["sds", "reward-sds"]
    assert agg["metrics"]["judge"][0]["n"] == 2  # the non-world prompt has no judge score
    md = (sweep / "eval.md").read_text()  # the same numbers as a Markdown table
    assert md.startswith("| variant | n | judge | judge-all |") and "| reward-sds | 3 |" in md

    h.SCORED.clear()  # a second eval only aggregates: nothing is rescored ...
    assert main(["eval", str(sweep), "--metrics", "_sweep_helpers:counting_reward", "--bootstrap", "50"]) == 0
    assert h.SCORED == []
    assert main(["eval", str(sweep), "--metrics", "_sweep_helpers:counting_reward", "--force"]) == 0
    assert sum(h.SCORED) == 6  # ... unless forced


def test_bad_metric_or_folder_exits_2(sweep, tmp_path, capsys):
    assert main(["eval", str(sweep), "--metrics", "world-clip@" + str(tmp_path / "nowhere")]) == 2
    assert "cannot load metric" in capsys.readouterr().err
    assert main(["eval", str(sweep), "--metrics", ","]) == 2
    assert main(["eval", str(tmp_path / "nothing")]) == 2


def test_read_tiles_splits_a_batch(tmp_path):
    row = np.concatenate([np.full((4, 4, 3), v, np.uint8) for v in (0, 128, 255)], axis=1)
    Image.fromarray(row).save(tmp_path / "x.png")
    tiles = read_tiles(tmp_path / "x.png", 3)
    assert tiles.shape == (3, 4, 4, 3) and [float(t.mean()) for t in tiles] == pytest.approx([0, 128 / 255, 1])
    with pytest.raises(ValueError):
        read_tiles(tmp_path / "x.png", 5)


# --- damaged runs and metrics that are not rewards ------------------------------------------------


def nan_metric(images, prompts):
    """A metric (``test_eval:nan_metric``) that gives NaN for the second image of every batch."""
    out = images.mean((1, 2, 3))
    out[1:2] = float("nan")
    return out


def short_metric(images, prompts):
    """A metric (``test_eval:short_metric``) that gives one score too few."""
    return images.mean((1, 2, 3))[1:]


def raising_metric(images, prompts):
    raise KeyError("no such thing")


def test_damaged_images_are_skipped_with_a_warning_then_scored_after_repair(sweep, capsys):
    with Store(sweep / "sweep.db") as s:
        runs = s.runs("done")
    missing, corrupt, cut = (sweep / r.run_dir / "image_raw.png" for r in runs[:3])
    good = missing.read_bytes()
    missing.unlink()
    corrupt.write_bytes(b"not a png")
    cut.write_bytes(cut.read_bytes()[:60])  # truncated inside the image data
    h.SCORED.clear()
    assert main(["eval", str(sweep), "--metrics", "judge,_sweep_helpers:counting_reward", "--bootstrap", "20",
                 "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 4 and lines[-1] == "rewardsds eval: 3 of 6 runs failed (rerun to retry them)"
    assert all(line.startswith("eval: skipped ") for line in lines[:3])
    assert "does not exist" in err and "cannot read" in err and "summary.json" in err
    assert sum(h.SCORED) == 3 and (sweep / "eval.json").exists()  # the other runs were scored and tabled
    with Store(sweep / "sweep.db") as s:
        scores = s.metrics()
    assert all("_sweep_helpers:counting_reward" not in scores.get(r.id, {}) for r in runs[:3])

    for path in (missing, corrupt, cut):  # repaired: the next eval scores exactly those three
        path.write_bytes(good)
    h.SCORED.clear()
    assert main(["eval", str(sweep), "--metrics", "_sweep_helpers:counting_reward", "--bootstrap", "20",
                 "--device", "cpu"]) == 0
    assert sum(h.SCORED) == 3


def test_no_readable_image_at_all_exits_2(sweep, capsys):
    with Store(sweep / "sweep.db") as s:
        for r in s.runs("done"):
            (sweep / r.run_dir / "image_raw.png").unlink()
    assert main(["eval", str(sweep), "--metrics", "_sweep_helpers:counting_reward", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("rewardsds eval: error: no finished run")
    assert not (sweep / "eval.json").exists()


@pytest.mark.parametrize("spec, message", [
    ("os:system", "f(images, prompts)"),
    ("test_eval:nan_metric", "non-finite"),
    ("test_eval:short_metric", "(2,)"),
    ("test_eval:raising_metric", "KeyError"),
    ("no_such_module_xyz:f", "cannot load metric"),
])
def test_metric_that_is_not_a_reward_is_one_line(sweep, capsys, spec, message):
    assert main(["eval", str(sweep), "--metrics", spec, "--device", "cpu", "--batch-size", "3"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (sweep / "eval.json").exists()
