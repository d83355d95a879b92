"""LAION aesthetic predictor: a head on the L2-normalised CLIP image embedding; the prompt is ignored.

Two published head formats are read, told apart by their state-dict keys:

* linear, ``{weight [1,D], bias [1]}`` - LAION-Aesthetics v1 (``sa_0_4_vit_l_14_linear.pth``);
* the "improved aesthetic predictor" MLP (C. Schuhmann, ``sac+logos+ava1-l14-linearMSE.pth``):
  ``layers = Sequential(Linear(D,1024), Dropout, Linear(1024,128), Dropout, Linear(128,64), Dropout,
  Linear(64,16), Linear(16,1))`` - no activations, so it is affine too; keys ``layers.{0,2,4,6,7}``.

Both are applied to ``e / ||e||`` with ``e`` the projected image embedding of CLIP ViT-L/14
(`CLIPVisionModelWithProjection`), giving a score on the 1-10 rating scale. The embedded world's
aesthetic model (rewardsds.world.train_aesthetic) uses the linear format.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import _compat
from .base import Reward
from .clip_score import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, load_image_stats, preprocess

_MLP_LINEARS = (0, 2, 4, 6, 7)  # Sequential indices of the Linear layers (the rest are Dropouts)


class MLPHead(nn.Module):
    """The improved-aesthetic-predictor MLP; parameter names match its released checkpoints."""

    def __init__(self, dim: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(dim, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def head_from_state_dict(state: dict[str, torch.Tensor]) -> nn.Module:
    """Build the head a state dict describes (linear or MLP, detected by key names) and load it."""
    keys = set(state)
    if keys == {"weight", "bias"}:
        head = nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
    elif keys == {f"layers.{i}.{p}" for i in _MLP_LINEARS for p in ("weight", "bias")}:
        head = MLPHead(state["layers.0.weight"].shape[1])
    else:
        raise ValueError("unrecognised aesthetic head: expected keys {weight, bias} (linear) or "
                         f"layers.{{0,2,4,6,7}}.{{weight,bias}} (MLP); got {sorted(keys)}")
    head.load_state_dict(state)
    return head.eval().requires_grad_(False)


def load_head(path) -> nn.Module:
    """A head from ``.safetensors`` or a torch ``.pth``/``.pt`` state dict (loaded weights-only)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
    return head_from_state_dict({k: v.float() for k, v in state.items()})


class AestheticReward(Reward):
    """``head(e / ||e||)`` with ``e`` the CLIP vision tower's projected embedding; prompts unused."""

    name = "aesthetic"

    def __init__(self, vision, head: nn.Module, image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD,
                 batch_size: int = 32, name: str | None = None):
        self.vision = vision.eval().requires_grad_(False)
        self.head = head.eval().requires_grad_(False)
        self.image_mean, self.image_std = list(image_mean), list(image_std)
        self.image_size = int(vision.config.image_size)
        self.batch_size = batch_size
        if name:
            self.name = name

    @classmethod
    def from_pretrained(cls, clip_path: str = "openai/clip-vit-large-patch14", head_path: str | None = None,
                        device: str = "cpu", dtype: torch.dtype | None = None, **kwargs) -> AestheticReward:
        """``clip_path``: a CLIP (or CLIP vision) folder or hub id; ``head_path``: the head file.
        A hub id that is neither cached nor downloadable (offline) raises
        `rewardsds._compat.WeightsUnavailableError` (an OSError) at once."""
        if head_path is None:
            raise ValueError("AestheticReward needs head_path: a linear or MLP head (.pth or .safetensors)")
        if not Path(head_path).is_file():
            raise FileNotFoundError(f"aesthetic head {str(head_path)!r} is not a file")
        clip_path = str(clip_path)
        offline = _compat.check_weights(clip_path, f"{kwargs.get('name') or cls.name} CLIP model", "config.json")
        from transformers import AutoConfig, CLIPVisionModelWithProjection

        config = AutoConfig.from_pretrained(clip_path, local_files_only=offline)
        if hasattr(config, "vision_config"):  # a full CLIPModel folder: the projection size lives on top
            projection_dim = config.projection_dim
            config = config.vision_config
            config.projection_dim = projection_dim
        vision = CLIPVisionModelWithProjection.from_pretrained(clip_path, config=config, local_files_only=offline,
                                                               **({"dtype": dtype} if dtype else {}))
        mean, std = load_image_stats(clip_path, local_files_only=offline)
        head = load_head(head_path)
        return cls(vision.to(device), head.to(device), mean, std, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.vision.parameters()).device

    def image_embeds(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised projected embeddings [B, D] (float32)."""
        dtype = next(self.vision.parameters()).dtype
        pix = preprocess(images.to(self.device, torch.float32), self.image_size, self.image_mean,
                         self.image_std).to(dtype)
        return F.normalize(self.vision(pixel_values=pix).image_embeds.float(), dim=-1)

    def score(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        chunks = [self.head(self.image_embeds(images[i:i + self.batch_size])).squeeze(-1)
                  for i in range(0, images.shape[0], self.batch_size)]
        return torch.cat(chunks)
