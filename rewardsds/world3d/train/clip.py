"""Train the 3D world CLIP: the 2D world's CLIP trainer (`rewardsds.world.train.clip`) on 3D renders.

    python -m rewardsds.world3d.train.clip --threads 1 --steps 3000

Each scene is seen from one random orbit view (azimuth 0-360, elevation 0-60) with a view-free caption,
so the reward learns to score a 3D scene the same from every side; hard negatives come from
`world3d.negatives`. Same model size, loss, augmentation and options as the 2D trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import tyro

from rewardsds.world.train.clip import ClipTrainConfig, main
from rewardsds.world.train.common import WorldSpec

from .. import paths
from .spec import WORLD3D


@dataclass
class Clip3DTrainConfig(ClipTrainConfig):
    world: ClassVar[WorldSpec] = WORLD3D
    out: Path = field(default_factory=paths.clip_dir)
    """the trained 3D CLIP is written here"""
    work: Path = Path("runs/world3d/clip")
    """checkpoints live here (resumed automatically)"""


__all__ = ["Clip3DTrainConfig", "main"]

if __name__ == "__main__":
    main(tyro.cli(Clip3DTrainConfig))
