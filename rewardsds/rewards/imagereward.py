"""ImageReward (Xu et al. 2023) through the optional `image-reward` package.

ImageReward = BLIP ViT-L image encoder + BERT text encoder cross-attending to the image tokens; the
[CLS] feature goes through an MLP and is standardised, ``r = (mlp(f) - mean) / std``. The package's
own `score`/`inference_rank` take PIL images one at a time; here the same computation runs on the
batch of tensors through the loaded model's parts (``blip.visual_encoder``, ``blip.text_encoder``,
``mlp``, ``mean``, ``std``) with its pre-processing done in torch: 224 px bicubic resize + centre
crop, CLIP mean/std. If a package version lacks those parts, images go through PIL and `score`.
"""

from __future__ import annotations

import torch

from .. import _compat
from .base import Reward
from .clip_score import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, preprocess

_PARTS = ("blip", "mlp", "mean", "std")


class ImageRewardReward(Reward):
    """Adapter over a loaded ImageReward model (``ImageReward.load(...)``)."""

    name = "imagereward"
    image_size = 224
    max_length = 35  # the package tokenises prompts to 35 BERT tokens

    def __init__(self, model, batch_size: int = 16):
        self.model = model.eval().requires_grad_(False)
        self.batch_size = batch_size
        blip = getattr(model, "blip", None)
        self.batched = all(hasattr(model, p) for p in _PARTS) and all(
            hasattr(blip, p) for p in ("visual_encoder", "text_encoder", "tokenizer"))

    @classmethod
    def from_pretrained(cls, name_or_path: str = "ImageReward-v1.0", device: str = "cpu",
                        **kwargs) -> ImageRewardReward:
        """``name_or_path``: a released name (downloaded by the package) or a local checkpoint."""
        # the package pins old timm/fairscale, so it is an extra, not a dependency
        rm = _compat.require("ImageReward", "imagereward", "the ImageReward reward")
        return cls(rm.load(name_or_path, device=device), **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _batched(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        blip = self.model.blip
        dtype = next(blip.visual_encoder.parameters()).dtype
        pix = preprocess(images.to(self.device, torch.float32), self.image_size, OPENAI_CLIP_MEAN,
                         OPENAI_CLIP_STD).to(dtype)
        image_embeds = blip.visual_encoder(pix)
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=self.device)
        text = blip.tokenizer(prompts, padding="max_length", truncation=True, max_length=self.max_length,
                              return_tensors="pt").to(self.device)
        out = blip.text_encoder(text.input_ids, attention_mask=text.attention_mask,
                                encoder_hidden_states=image_embeds, encoder_attention_mask=image_atts,
                                return_dict=True)
        raw = self.model.mlp(out.last_hidden_state[:, 0, :].float()).squeeze(-1)
        return (raw - self.model.mean) / self.model.std

    def _via_pil(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        from PIL import Image

        arrays = (images.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype("uint8")
        pairs = zip(arrays, prompts, strict=True)
        return torch.tensor([float(self.model.score(p, Image.fromarray(a))) for a, p in pairs])

    def score(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        fn = self._batched if self.batched else self._via_pil
        return torch.cat([fn(images[i:i + self.batch_size], prompts[i:i + self.batch_size]).float().cpu()
                          for i in range(0, images.shape[0], self.batch_size)])
