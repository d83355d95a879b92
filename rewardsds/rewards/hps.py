"""HPSv2 / HPSv2.1 (Wu et al. 2023, Human Preference Score v2) through `open_clip`.

HPSv2 is an OpenCLIP ViT-H/14 fine-tuned on human preference pairs; its reference scorer
(github.com/tgxs002/HPSv2, ``hpsv2/img_score.py``) computes ``diag(image_features @ text_features.T)``
with both feature sets L2-normalised by open_clip and no temperature, i.e. the cosine (typically
0.2-0.35). ``scale`` multiplies it (HPSv2's benchmark tables print it x100).

The architecture is built with ``pretrained=None`` (no LAION download) and the HPS checkpoint
(``HPS_v2_compressed.pt`` / ``HPS_v2.1_compressed.pt``: ``{"state_dict": ...}`` or a plain state
dict) supplies every weight. Pre-processing in torch: bicubic resize of the shortest edge, centre
crop, the model's image mean/std (OpenAI's for ViT-H-14) - as open_clip's validation transform.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .. import _compat
from .base import Reward
from .clip_score import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, preprocess

HPS_FILES = {"v2.0": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}
HPS_REPO = "xswu/HPSv2"


class HPSv2Reward(Reward):
    """``scale * cos(image, prompt)`` from an open_clip model carrying HPS weights."""

    name = "hpsv2"

    def __init__(self, model, tokenizer, scale: float = 1.0, batch_size: int = 16):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer  # open_clip tokenizer: list[str] -> LongTensor [B, context_length]
        size = getattr(model.visual, "image_size", 224)
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.image_mean = tuple(getattr(model.visual, "image_mean", None) or OPENAI_CLIP_MEAN)
        self.image_std = tuple(getattr(model.visual, "image_std", None) or OPENAI_CLIP_STD)
        self.scale, self.batch_size = scale, batch_size

    @classmethod
    def from_pretrained(cls, checkpoint: str | None = None, version: str = "v2.1", arch: str = "ViT-H-14",
                        device: str = "cpu", dtype: torch.dtype | None = None, **kwargs) -> HPSv2Reward:
        """``checkpoint``: a local HPS ``.pt``; None downloads ``xswu/HPSv2``'s file for ``version`` (or
        takes it from the Hugging Face cache; neither possible raises
        `rewardsds._compat.WeightsUnavailableError`, an OSError, at once)."""
        open_clip = _compat.require("open_clip", "openclip", "the HPSv2 reward")
        if checkpoint is None:
            if version not in HPS_FILES:
                raise ValueError(f"unknown HPS version {version!r}; expected one of {sorted(HPS_FILES)}")
            offline = _compat.check_weights(HPS_REPO, f"HPS{version} checkpoint", HPS_FILES[version])
            from huggingface_hub import hf_hub_download

            checkpoint = hf_hub_download(HPS_REPO, HPS_FILES[version], local_files_only=offline)
        elif not Path(checkpoint).is_file():
            raise FileNotFoundError(f"HPS checkpoint {str(checkpoint)!r} is not a file")
        model = open_clip.create_model(arch, pretrained=None)
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state))
        model = model.to(device, dtype) if dtype else model.to(device)
        return cls(model, open_clip.get_tokenizer(arch), **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _cosine(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        dtype = next(self.model.parameters()).dtype
        pix = preprocess(images.to(self.device, torch.float32), self.image_size, self.image_mean,
                         self.image_std).to(dtype)
        img = F.normalize(self.model.encode_image(pix).float(), dim=-1)
        txt = F.normalize(self.model.encode_text(self.tokenizer(prompts).to(self.device)).float(), dim=-1)
        return (img * txt).sum(-1)

    def score(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        cos = torch.cat([self._cosine(images[i:i + self.batch_size], prompts[i:i + self.batch_size])
                         for i in range(0, images.shape[0], self.batch_size)])
        return cos * self.scale
