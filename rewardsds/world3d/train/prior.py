"""Train the view-aware 3D world prior: the 2D world's prior trainer (`rewardsds.world.train.prior`)
on 3D renders captioned with their view.

    python -m rewardsds.world3d.train.prior --threads 1 --steps 3000

Each training image is one random orbit view of a random scene, captioned e.g. "a red cube left of a
blue sphere, side view" (DreamFusion's suffix, exactly as `gen3d` appends it), so one U-Net learns the
scene's appearance per view. The text encoder is the 3D world CLIP's text tower (``--clip``, default
`world3d.paths.clip_dir()`), frozen; the CLIP never saw the view words, so their token embeddings stay
at their (distinct, random) initial values and the U-Net learns what they mean. The output folder is
Stable Diffusion's layout with `model_index.json`'s `_class_name` ``RewardSDSWorld3DPrior``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import tyro

from rewardsds.world.train.common import WorldSpec
from rewardsds.world.train.prior import PriorTrainConfig, main

from .. import paths
from .spec import WORLD3D


@dataclass
class Prior3DTrainConfig(PriorTrainConfig):
    world: ClassVar[WorldSpec] = WORLD3D
    clip: Path = field(default_factory=paths.clip_dir)
    """the 3D world CLIP whose text tower conditions the prior"""
    out: Path = field(default_factory=paths.prior_dir)
    """the trained prior is written here (Stable Diffusion's folder layout)"""
    work: Path = Path("runs/world3d/prior")
    """checkpoints live here (resumed automatically)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.init is None:
            paths.require(self.clip, "config.json")  # say which command makes the CLIP, not a bare OSError


__all__ = ["Prior3DTrainConfig", "main"]

if __name__ == "__main__":
    main(tyro.cli(Prior3DTrainConfig))
