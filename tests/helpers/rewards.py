"""A user-callable reward for CLI tests (`--reward tests.helpers.rewards:redness`), from `tests/_builders.py`."""

from .._builders import redness

__all__ = ["redness"]


def nan_reward(images, prompts):
    """A broken user reward: NaN for every image (the run must stop with one clear line)."""
    import torch

    return torch.full((images.shape[0],), float("nan"))
