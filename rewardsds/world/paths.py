"""Where the embedded world's trained weights live (shipped inside the package as package data),
and the name its prior family goes by.

Every default path of the world (the trainers' `--out`, the loaders, `world-eval`) comes from the
functions here, so it is right from any working directory, not only from the repository root.
"""

from __future__ import annotations

from pathlib import Path

WORLD_FAMILY = "RewardSDSWorldPrior"
"""The world prior's family: `model_index.json`'s `_class_name` (written by `world.train.prior`)."""


def weights_dir() -> Path:
    """`rewardsds/world/weights/`: one sub-folder per trained model."""
    return Path(__file__).parent / "weights"


def clip_dir(weights: Path | None = None) -> Path:
    """The world CLIP (transformers `CLIPModel` + tokenizer + image processor): ``clip/`` under `weights`
    (default `weights_dir()`; the 3D world passes its own)."""
    return (weights_dir() if weights is None else weights) / "clip"


def prior_dir(weights: Path | None = None) -> Path:
    """The world prior, in Stable Diffusion's folder layout (unet/, text_encoder/, tokenizer/, ...): ``prior/``
    under `weights` (default `weights_dir()`; the 3D world passes its own)."""
    return (weights_dir() if weights is None else weights) / "prior"


def aesthetic_dir() -> Path:
    """The world aesthetic predictor: `vision/` (CLIP vision tower) and `head.safetensors`."""
    return weights_dir() / "aesthetic"
