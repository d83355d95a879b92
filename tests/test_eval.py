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
