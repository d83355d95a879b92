"""Train the 3D world CLIP: the 2D world's CLIP trainer (`rewardsds.world.train.clip`) on 3D renders.

    python -m rewardsds.world3d.train.clip --threads 1 --steps 3000

Each scene is seen from one random orbit view (azimuth 0-360, elevation 0-60). Its caption is, by default,
the scene-frame caption with the view's suffix (", back view"), as gen3d prompted the reward so far; with
``--camera-frame`` it is the caption of the scene as that camera sees it (`world3d.scenes.camera_frame`), with
no view words. Hard negatives come from `world3d.negatives` and keep the caption's frame and suffix. Same
model size, loss, augmentation and options as the 2D trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tyro

from rewardsds.world.train.clip import ClipTrainConfig, main
from rewardsds.world.train.common import WorldSpec

from .. import paths
from .spec import WORLD3D, WORLD3D_CAMERA


@dataclass
class Clip3DTrainConfig(ClipTrainConfig):
    out: Path = field(default_factory=paths.clip_dir)
    """the trained 3D CLIP is written here"""
    work: Path = Path("runs/world3d/clip")
    """checkpoints live here (resumed automatically)"""
    camera_frame: bool = False
    """captions in the camera's frame (`world3d.scenes.camera_frame`: relations as the image shows them, no
    view words) instead of the scene frame with a view suffix; recorded in the training record, from which
    gen3d and the gate learn how to caption for this CLIP (`world3d.paths.clip_captions`)"""

    @property
    def world(self) -> WorldSpec:  # type: ignore[override]  (the base's class attribute, chosen per run here)
        return WORLD3D_CAMERA if self.camera_frame else WORLD3D


__all__ = ["Clip3DTrainConfig", "main"]

if __name__ == "__main__":
    main(tyro.cli(Clip3DTrainConfig))
