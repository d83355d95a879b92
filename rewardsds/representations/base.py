"""What the one optimisation loop (`rewardsds.loop.optimize`) asks of a thing being distilled.

A representation owns its parameters and turns them into the prior's input for one step:

    views(step, generator) -> Views(x0 [B,C,H,W] in the prior's model space, one prompt per row, ...)

For a 2D image x0 is the image itself; for a 3D field it is a batch of rendered, resized and encoded
camera views (nerfstudio's `Model.get_outputs` plays this part for its one `Trainer`). The loop
never asks which representation it holds: it calls `param_groups` once, `views` and `after_step`
every step, `frame` for the progress video, and `state_dict`/`load_state_dict` for checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch


@dataclass
class Views:
    x0: torch.Tensor
    """[B,C,H,W] in the prior's model space, differentiable w.r.t. the representation's parameters"""
    prompts: list[str]
    """one prompt per row of x0"""
    shared: bool = False
    """rows are views of ONE object: candidate i is one set of per-view noises, and its reward is the
    mean over the views (so the candidate weights are shared by all rows)"""
    cameras: torch.Tensor | None = None
    """[B,4,4] camera-to-world matrix of each row (`render.cameras` convention), for priors that read them
    (multi-view priors, `priors.multiview`); None for a 2D image"""
    reward_prompts: list[str] | None = None
    """the reward's prompt per row where it differs from the prior's (a view-suffixed caption for a reward
    trained on view words while a multi-view prior reads cameras); None: `prompts`"""
    extra_loss: torch.Tensor | None = None
    """added to the distillation surrogate (e.g. an opacity penalty)"""
    log: dict = field(default_factory=dict)
    """JSON-able facts about this step for log.jsonl (resolution, shading, ...)"""


@runtime_checkable
class Representation(Protocol):
    def param_groups(self, lr: float) -> list[dict]:
        """Adam parameter groups at base learning rate `lr`."""

    def views(self, step: int, generator: torch.Generator) -> Views:
        """The prior's input for this step (may draw cameras etc. from `generator`)."""

    def after_step(self, step: int, optimizer: torch.optim.Optimizer) -> None:
        """Called after each optimiser step (densify/prune for Gaussians; a no-op elsewhere)."""

    def frame(self) -> np.ndarray | None:
        """uint8 [B,H,W,3] for the progress video, or None when the representation has none."""

    def state_dict(self) -> dict:
        ...

    def load_state_dict(self, state: dict) -> None:
        ...
