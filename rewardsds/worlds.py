"""The embedded worlds as `--prior` aliases: 'world' (2D, shipped), 'world3d' and 'world3d-mv' (its multi-view
prior, `priors.multiview`), both trained later.

Knowing an alias's family without loading anything lets every default (config.FAMILY_DEFAULTS) resolve
before any weights load, or even exist. Light on purpose (pathlib only): the loaders, the sweep's
fingerprint and the configs all read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .world import paths as world_paths
from .world3d import paths as world3d_paths


@dataclass(frozen=True)
class WorldPrior:
    """An embedded world's `--prior` alias: the family its folder declares and where the folder lives."""

    family: str
    prior_dir: Callable[[], Path]
    """the folder, looked up at call time (so a retrained or relocated weights folder is seen)"""
    train_hint: str | None = None
    """how to make the weights when the folder is missing (None: they ship with the package)"""
    name: str = "embedded world"
    """how an error names the world"""
    words: Callable[[], list[str]] | None = None
    """the words an unknown-word error lists (None: the prior tokenizer's alphabetic tokens)"""


def _world3d_words() -> list[str]:
    from .world3d.scenes import vocabulary  # the 3D grammar's words, view words included

    return [w for w in vocabulary() if w.isalpha()]


WORLD_PRIORS: dict[str, WorldPrior] = {
    "world": WorldPrior(world_paths.WORLD_FAMILY, lambda: world_paths.prior_dir()),
    "world3d": WorldPrior(world3d_paths.WORLD3D_FAMILY, lambda: world3d_paths.prior_dir(), train_hint=(
        f"train the 3D CLIP, then the prior: `{world3d_paths.TRAIN_COMMANDS['clip']} --threads 1` then "
        f"`{world3d_paths.TRAIN_COMMANDS['prior']} --threads 1` (or pass --prior FOLDER)"),
        name="embedded 3D world", words=_world3d_words),
    "world3d-mv": WorldPrior(world3d_paths.WORLD3D_MV_FAMILY, lambda: world3d_paths.mvprior_dir(), train_hint=(
        f"train the 3D CLIP, then the multi-view prior: `{world3d_paths.TRAIN_COMMANDS['clip']} --threads 1` then "
        f"`{world3d_paths.TRAIN_COMMANDS['mvprior']} --threads 1` (or pass --prior FOLDER)"),
        name="embedded 3D world", words=_world3d_words),
}
"""`--prior` aliases of the embedded worlds (the hub aliases are `config.PRIOR_ALIASES`)"""


def world_of_family(family: str) -> WorldPrior | None:
    """The embedded world whose prior folders declare `family` (model_index.json `_class_name`), if any."""
    return next((w for w in WORLD_PRIORS.values() if w.family == family), None)
