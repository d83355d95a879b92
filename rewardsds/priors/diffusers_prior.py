"""The diffusers adapter: Stable Diffusion (1.5 / 2.1-base, with a VAE) and the embedded world prior
(pixel space, no VAE) through one loader, since both folders share Stable Diffusion's layout:
``unet/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/`` and optionally ``vae/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .base import DiffusionPrior, EpsPrediction, TextEmbedding, eps_from_output


class DiffusersPrior(DiffusionPrior):
    def __init__(self, unet, text_encoder, tokenizer, scheduler, vae=None) -> None:
        super().__init__()
        self.unet = unet.eval().requires_grad_(False)
        self.text_encoder = text_encoder.eval().requires_grad_(False)
        self.vae = vae.eval().requires_grad_(False) if vae is not None else None
        self.tokenizer = tokenizer
        self.scheduler = scheduler  # kept for its config (DDIM preview / sampling use it)
        self.prediction_type = scheduler.config.prediction_type
        self.family = ""  # model_index.json's _class_name: "RewardSDSWorldPrior" for the embedded world
        self.register_buffer("alphas_cumprod", scheduler.alphas_cumprod.clone().float(), persistent=False)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None, local_files_only: bool | None = None):
        """Load from a local folder or a hub id (e.g. ``stabilityai/stable-diffusion-2-1-base``).

        dtype defaults to float16 on CUDA and float32 elsewhere. Raises `PriorLoadError` with one clear
        message, within seconds: a folder without Stable Diffusion's layout names the missing parts; a
        hub id that is not in the local cache while the hub is off (``HF_HUB_OFFLINE``,
        ``local_files_only=True``) or unreachable says so instead of retrying the download.
        """
        from .. import _compat

        path = str(path)
        if Path(path).exists():
            check_layout(Path(path))
            local_files_only = True
        else:
            try:
                local_files_only = _compat.check_weights(path, "prior", "unet/config.json", local_files_only)
            except _compat.WeightsUnavailableError as e:
                raise PriorLoadError(str(e)) from e

        from diffusers import AutoencoderKL, DDIMScheduler
        from transformers import AutoTokenizer, CLIPTextModel

        _compat.quiet_loading()
        device = torch.device(device)
        dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
        kw = dict(local_files_only=local_files_only)
        has_vae = (Path(path) / "vae").is_dir() if Path(path).is_dir() else True
        try:
            unet = cls._load_unet(path, dtype, kw)
            text = CLIPTextModel.from_pretrained(path, subfolder="text_encoder", torch_dtype=dtype, **kw)
            tok = AutoTokenizer.from_pretrained(path, subfolder="tokenizer", **kw)
            sched = DDIMScheduler.from_pretrained(path, subfolder="scheduler", **kw)
            vae = (AutoencoderKL.from_pretrained(path, subfolder="vae", torch_dtype=dtype, **kw)
                   if has_vae else None)
        except (OSError, ValueError) as e:
            raise PriorLoadError(f"could not load a diffusion prior from {path!r}: {e}") from e
        prior = cls(unet, text, tok, sched, vae).to(device)
        index = Path(path) / "model_index.json"
        if index.is_file():
            import json

            prior.family = json.loads(index.read_text()).get("_class_name", "")
        return prior

    @classmethod
    def _load_unet(cls, path: str, dtype: torch.dtype, kw: dict):
        """The folder's unet/ (a subclass may read another U-Net class into a diffusers one)."""
        from diffusers import UNet2DConditionModel

        return UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=dtype, **kw)

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        size = self.unet.config.sample_size
        size = size if isinstance(size, int) else size[0]
        return (self.unet.config.in_channels, size, size)

    @property
    def image_size(self) -> int:
        if self.vae is None:
            return self.sample_shape[-1]
        return self.sample_shape[-1] * 2 ** (len(self.vae.config.block_out_channels) - 1)

    def _embed(self, prompts: list[str]) -> torch.Tensor:
        enc = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt")
        return self.text_encoder(input_ids=enc.input_ids.to(self.device)).last_hidden_state

    def predict_eps(self, x_t: torch.Tensor, t: torch.Tensor, emb: TextEmbedding) -> EpsPrediction:
        b = x_t.shape[0]
        t = t.to(self.device).expand(b) if t.dim() == 0 else t.to(self.device)
        x_in = torch.cat([x_t, x_t]).to(self.dtype)
        ctx = torch.cat([emb.cond, emb.uncond]).to(self.dtype)
        out = self.unet(x_in, torch.cat([t, t]), encoder_hidden_states=ctx, **self._unet_inputs(emb, b)).sample.float()
        eps = eps_from_output(out, torch.cat([x_t, x_t]).float(), self.alphas_cumprod[torch.cat([t, t])],
                              self.prediction_type)
        return EpsPrediction(eps[:b], eps[b:])

    def _unet_inputs(self, emb: TextEmbedding, rows: int) -> dict:
        """Extra U-Net inputs for the batched (cond, uncond) call of `rows` rows (none here; a multi-view
        prior adds its cameras)."""
        return {}

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        x = images * 2 - 1
        if self.vae is None:
            return x
        z = self.vae.encode(x.to(self.dtype)).latent_dist.mean
        return z.float() * self.vae.config.scaling_factor

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        if self.vae is not None:
            x0 = self.vae.decode((x0 / self.vae.config.scaling_factor).to(self.dtype)).sample.float()
        return ((x0 + 1) / 2).clamp(0, 1)


class PriorLoadError(RuntimeError):
    """A prior could not be loaded (missing files offline, wrong folder layout, corrupt weights)."""


LAYOUT = ("unet", "text_encoder", "tokenizer", "scheduler")
_EXPECTED = "Stable Diffusion's layout: model_index.json, unet/, text_encoder/, tokenizer/, scheduler/, optional vae/"


def check_layout(folder: Path) -> None:
    """Raise `PriorLoadError` naming what is missing unless ``folder`` has the subfolders that
    `DiffusersPrior.from_pretrained` loads (``model_index.json`` is optional: only the family is read)."""
    if not folder.is_dir():
        raise PriorLoadError(f"prior {str(folder)!r} is a file, not a diffusers folder ({_EXPECTED}); "
                             "single-file checkpoints are not supported")
    missing = [f"{name}/" for name in LAYOUT if not (folder / name).is_dir()]
    if missing:
        index = "" if (folder / "model_index.json").is_file() else " and model_index.json"
        raise PriorLoadError(f"{str(folder)!r} is not a diffusers prior folder: it has no {', '.join(missing)}"
                             f"{index} (expected {_EXPECTED})")
