"""Where the 3D world's trained weights live (package data, as for the 2D world) and its family name.

Every default path of the 3D world (the trainers' `--out`, loaders) comes from here, so it is right from
any working directory. The weights are not shipped yet: `require` turns a missing folder into an error
that says which command trains it, instead of a loader's bare "file not found".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from rewardsds.world import paths as _flat

WORLD3D_FAMILY = "RewardSDSWorld3DPrior"
"""The 3D world prior's family: `model_index.json`'s `_class_name` (written by `world3d.train.prior`).
Distinct from the 2D `RewardSDSWorldPrior`, so that loaders can tell a view-aware prior apart."""

WORLD3D_MV_FAMILY = "RewardSDSWorld3DMultiViewPrior"
"""The 3D world's multi-view prior (the MVDream analogue, `world3d.train.mvprior`): 4 views of one scene per
sample, each with its camera, self-attention across the views (`priors.multiview`)."""

TRAIN_COMMANDS = {"clip": "python -m rewardsds.world3d.train.clip",
                  "prior": "python -m rewardsds.world3d.train.prior",
                  "mvprior": "python -m rewardsds.world3d.train.mvprior"}
"""how each folder under `weights_dir()` is made (quoted by `require`)"""


def weights_dir() -> Path:
    """`rewardsds/world3d/weights/`: one sub-folder per trained model (may not exist yet)."""
    return Path(__file__).parent / "weights"


def clip_dir() -> Path:
    """The 3D world CLIP, view-invariant, laid out as the 2D one (`rewardsds.world.paths.clip_dir`)."""
    return _flat.clip_dir(weights_dir())


def prior_dir() -> Path:
    """The 3D world prior, view-aware, laid out as the 2D one (`rewardsds.world.paths.prior_dir`)."""
    return _flat.prior_dir(weights_dir())


def mvprior_dir() -> Path:
    """The 3D world multi-view prior (`WORLD3D_MV_FAMILY`), in the same folder layout as the prior."""
    return weights_dir() / "mvprior"


def clip_captions(folder: Path) -> Literal["camera-frame", "view-words"]:
    """How a 3D world CLIP folder wants its captions: "camera-frame" when its training record says it was
    trained so (`world3d.train.clip --camera-frame`: relations as the view shows them, no view words), else
    "view-words" (scene-frame captions with the view's suffix, as every 3D CLIP before it). Reads one small
    JSON file, never the model."""
    try:
        record = json.loads((Path(folder) / "training_record.json").read_text())
    except (OSError, ValueError):
        return "view-words"
    return "camera-frame" if str(record.get("config", {}).get("camera_frame")) == "True" else "view-words"


def require(folder: Path, marker: str) -> Path:
    """`folder` if it holds `marker` (e.g. ``config.json`` or ``model_index.json``); else FileNotFoundError
    naming the command that trains it."""
    folder = Path(folder)
    if not (folder / marker).exists():
        how = TRAIN_COMMANDS.get(folder.name, "the 3D world trainers (python -m rewardsds.world3d.train.*)")
        raise FileNotFoundError(f"3D world weights missing: {str(folder / marker)!r} does not exist "
                                f"(not trained yet? train them with `{how} --out {folder}`)")
    return folder
