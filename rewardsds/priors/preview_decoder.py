"""An optional cheap decoder for the candidates' previews (diffusers `AutoencoderTiny`, e.g. TAESD).

At Stable Diffusion scale most of a RewardSDS step is decoding the N previews with the full VAE
(56% of a default step on CPU, `scripts/bench_scale.py`); the previews are only *ranked* by the reward,
so a tiny decoder that approximates the VAE (TAESD: ``madebyollin/taesd`` for SD 1.x/2.x) can stand in
for it there. The final image and every gradient still use the prior's own VAE.
"""

from __future__ import annotations

import os

import torch


class PreviewDecoder(torch.nn.Module):
    """x0 in the prior's latent space (scaled by the prior VAE's scaling_factor, as SD pipelines pass them
    to AutoencoderTiny) -> images [B,3,H,W] in [0,1]; decoded `chunk` latents at a time to bound memory."""

    def __init__(self, vae, chunk: int = 4) -> None:
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        self.chunk = chunk

    @torch.no_grad()
    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        dtype = next(self.vae.parameters()).dtype
        scale = self.vae.config.scaling_factor
        parts = [self.vae.decode((z / scale).to(dtype)).sample.float() for z in x0.split(self.chunk)]
        return ((torch.cat(parts) + 1) / 2).clamp(0, 1)


def load_preview_decoder(path: str | os.PathLike, prior, local_files_only: bool | None = None
                         ) -> PreviewDecoder:
    """Load an `AutoencoderTiny` folder or hub id for `prior`; ValueError when it cannot serve it (the
    prior has no VAE, other latent channels, or nothing loadable there)."""
    from .. import _compat

    if getattr(prior, "vae", None) is None:
        raise ValueError("--preview-decoder needs a latent prior (Stable Diffusion); this prior has no VAE")
    path = str(path)
    try:  # a local folder, or a hub id said unreachable within seconds
        local_files_only = _compat.check_weights(path, "preview decoder", "config.json", local_files_only)
    except _compat.WeightsUnavailableError as e:
        raise ValueError(str(e)) from e
    from diffusers import AutoencoderTiny

    _compat.quiet_loading()
    try:
        vae = AutoencoderTiny.from_pretrained(path, torch_dtype=prior.dtype, local_files_only=local_files_only)
    except (OSError, ValueError) as e:
        raise ValueError(f"could not load an AutoencoderTiny preview decoder from {path!r}: {e}") from e
    want = prior.sample_shape[0]
    if vae.config.latent_channels != want:
        raise ValueError(f"preview decoder {path!r} reads {vae.config.latent_channels} latent channels; "
                         f"the prior's latents have {want}")
    return PreviewDecoder(vae).to(prior.device)
