"""CLIPScore and PickScore rewards over a transformers `CLIPModel`, batched and differentiable-free.

CLIPScore (Hessel et al. 2021): ``w * max(cos(E_I(x), E_T(c)), 0)`` with ``w = 100`` as RewardSDS
(Chachy et al. 2025) and most text-to-image papers report it (the original paper uses w = 2.5).
PickScore (Kirstain et al. 2023) is the same two-tower computation read off a CLIP-H fine-tuned on
Pick-a-Pic preferences, scaled by the model's learned temperature ``exp(logit_scale)`` and not clamped.

Pre-processing runs in torch on the batch (no PIL round trip): shortest edge resized to the vision
tower's ``image_size`` (bicubic, anti-aliased, as CLIP's processor does with PIL), centre crop, then
``(x - image_mean) / image_std`` with the statistics of the folder's ``preprocessor_config.json``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .. import _compat
from .base import Reward

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def preprocess(images: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """[B,3,H,W] in [0,1] -> CLIP pixel values: resize shortest edge to ``size``, centre-crop, normalise."""
    h, w = images.shape[-2:]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        # clamp: bicubic overshoots, and CLIP's PIL pipeline clips to the uint8 range
        images = F.interpolate(images, size=(nh, nw), mode="bicubic", antialias=True,
                               align_corners=False).clamp(0, 1)
        top, left = (nh - size) // 2, (nw - size) // 2
        images = images[..., top:top + size, left:left + size]
    m = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - m) / s


def load_image_stats(path, local_files_only: bool = False) -> tuple[list[float], list[float]]:
    """image_mean / image_std of a folder's `preprocessor_config.json` (CLIP's defaults if absent)."""
    import transformers

    # the PIL-backed class only reads the config; it avoids transformers 5's torchvision fallback warning
    cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    try:
        proc = cls.from_pretrained(path, local_files_only=local_files_only)
    except OSError:
        return list(OPENAI_CLIP_MEAN), list(OPENAI_CLIP_STD)
    return list(proc.image_mean), list(proc.image_std)


class CLIPScoreReward(Reward):
    """``scale * cos(image, prompt)`` from a `CLIPModel`; ``scale=None`` uses ``exp(logit_scale)``.

    Images are encoded in chunks of ``batch_size``; text is tokenised to the tokenizer's
    ``model_max_length`` (capped by the text tower's ``max_position_embeddings``), truncating."""

    name = "clipscore"

    def __init__(self, model, tokenizer, image_mean: Sequence[float] = OPENAI_CLIP_MEAN,
                 image_std: Sequence[float] = OPENAI_CLIP_STD, scale: float | None = 100.0,
                 clamp: bool = True, batch_size: int = 32, name: str | None = None):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.image_mean, self.image_std = list(image_mean), list(image_std)
        self.image_size = int(model.config.vision_config.image_size)
        limit = int(model.config.text_config.max_position_embeddings)
        tok_max = getattr(tokenizer, "model_max_length", limit) or limit
        self.max_length = min(limit, int(tok_max))  # tokenizers often report a huge "unlimited" value
        self.scale, self.clamp, self.batch_size = scale, clamp, batch_size
        if name:
            self.name = name

    @classmethod
    def from_pretrained(cls, path_or_id: str = "openai/clip-vit-large-patch14", device: str = "cpu",
                        dtype: torch.dtype | None = None, processor_path: str | None = None,
                        **kwargs) -> CLIPScoreReward:
        """Load model weights from ``path_or_id`` and tokenizer + image statistics from
        ``processor_path`` (default: the same folder or hub id). A hub id that is neither cached nor
        downloadable (offline) raises `rewardsds._compat.WeightsUnavailableError` (an OSError) at once."""
        path_or_id, proc = str(path_or_id), str(processor_path or path_or_id)
        what = kwargs.get("name") or cls.name
        offline = _compat.check_weights(path_or_id, f"{what} model", "config.json")
        proc_offline = offline if proc == path_or_id else _compat.check_weights(
            proc, f"{what} tokenizer", "tokenizer_config.json")
        from transformers import AutoTokenizer, CLIPModel

        model = CLIPModel.from_pretrained(path_or_id, local_files_only=offline,
                                          **({"dtype": dtype} if dtype else {}))
        model = model.to(device)
        mean, std = load_image_stats(proc, local_files_only=proc_offline)
        return cls(model, AutoTokenizer.from_pretrained(proc, local_files_only=proc_offline), mean, std, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def image_embeds(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised projected image features [B, D] (float32)."""
        pix = preprocess(images.to(self.device, torch.float32), self.image_size, self.image_mean,
                         self.image_std).to(self.dtype)
        feats = _compat.features(self.model.get_image_features(pixel_values=pix))
        return F.normalize(feats.float(), dim=-1)

    def text_embeds(self, prompts: list[str]) -> torch.Tensor:
        """L2-normalised projected text features [B, D] (float32)."""
        # fixed-length padding: the same prompt gives bit-identical features in any batch
        enc = self.tokenizer(prompts, padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt").to(self.device)
        feats = _compat.features(self.model.get_text_features(input_ids=enc["input_ids"],
                                                              attention_mask=enc["attention_mask"]))
        return F.normalize(feats.float(), dim=-1)

    def score(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        out = []
        for i in range(0, images.shape[0], self.batch_size):
            img = self.image_embeds(images[i:i + self.batch_size])
            txt = self.text_embeds(prompts[i:i + self.batch_size])
            cos = (img * txt).sum(-1)
            out.append(cos.clamp_min(0) if self.clamp else cos)
        scale = self.model.logit_scale.exp().float() if self.scale is None else self.scale
        return torch.cat(out) * scale


class PickScoreReward(CLIPScoreReward):
    """PickScore: ``exp(logit_scale) * cos(image, prompt)``, unclamped, from a CLIP-H checkpoint."""

    name = "pickscore"

    def __init__(self, model, tokenizer, image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD,
                 scale: float | None = None, clamp: bool = False, **kwargs):
        super().__init__(model, tokenizer, image_mean, image_std, scale=scale, clamp=clamp, **kwargs)

    @classmethod
    def from_pretrained(cls, path_or_id: str = "yuvalkirstain/PickScore_v1", device: str = "cpu",
                        dtype: torch.dtype | None = None,
                        processor_path: str | None = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
                        **kwargs) -> PickScoreReward:
        return super().from_pretrained(path_or_id, device, dtype, processor_path, **kwargs)
