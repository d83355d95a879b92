"""The one interface every diffusion prior implements (adapters live beside it).

Notation (epsilon-prediction, discrete t in {0..T-1}): ``x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps`` with
``a_t`` = alphas_cumprod[t]. Classifier-free guidance: ``eps_hat = eps_u + s (eps_c - eps_u)``.
Backends that predict v or x0 convert to epsilon inside `predict_eps`, so the losses see one
parameterisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Conditioning:
    """What a prior is conditioned on, one row per image (k-diffusion's ``extra_args``): conditional and
    unconditional (negative-prompt) encoder states and, for multi-view priors, each row's camera.

    ``cameras`` are camera-to-world matrices in the convention of `rewardsds.render.cameras` (y up, the
    camera looks along -z, azimuth 0 = front on +z); single-view priors ignore them. New conditioning
    goes here, never into new arguments of `DiffusionPrior.predict_eps` (STYLE 2.1)."""

    cond: torch.Tensor  # [B, L, D]
    uncond: torch.Tensor  # [B, L, D]
    cameras: torch.Tensor | None = None  # [B, 4, 4] c2w, or None

    def repeat(self, n: int) -> Conditioning:
        """Each row repeated n times consecutively (row i -> rows i*n .. i*n+n-1)."""
        cams = self.cameras.repeat_interleave(n, 0) if self.cameras is not None else None
        return Conditioning(self.cond.repeat_interleave(n, 0), self.uncond.repeat_interleave(n, 0), cams)

    def select(self, index: torch.Tensor) -> Conditioning:
        return Conditioning(self.cond[index], self.uncond[index],
                            self.cameras[index] if self.cameras is not None else None)

    def with_cameras(self, cameras: torch.Tensor | None) -> Conditioning:
        """The same text with these cameras (c2w [B,4,4], one per row; None drops them)."""
        if cameras is not None and (cameras.dim() != 3 or cameras.shape[1:] != (4, 4)
                                    or cameras.shape[0] != self.cond.shape[0]):
            raise ValueError(f"cameras must be c2w matrices [{self.cond.shape[0]}, 4, 4] (one per row), got "
                             f"{tuple(cameras.shape)}")
        return Conditioning(self.cond, self.uncond, cameras)


TextEmbedding = Conditioning
"""the name the text-only code uses (a `Conditioning` without cameras)"""


@dataclass(frozen=True)
class EpsPrediction:
    """The two halves of one batched guided call; combine with any guidance scale, no new call."""

    cond: torch.Tensor
    uncond: torch.Tensor

    def guided(self, scale: float) -> torch.Tensor:
        return self.uncond + scale * (self.cond - self.uncond)


class DiffusionPrior(torch.nn.Module):
    """A frozen text-to-image diffusion model seen through epsilon prediction.

    Subclasses set `alphas_cumprod` (a float32 buffer of length T) and implement `_embed`,
    `predict_eps`, `encode` and `decode`. `embed` caches text embeddings per (prompt, negative).
    """

    alphas_cumprod: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self._emb_cache: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}

    # --- to implement -------------------------------------------------------------------
    def _embed(self, prompts: list[str]) -> torch.Tensor:
        """Encoder states [B, L, D] for the prompts (no grad)."""
        raise NotImplementedError

    def predict_eps(self, x_t: torch.Tensor, t: torch.Tensor, emb: Conditioning) -> EpsPrediction:
        """Conditional and unconditional epsilon at (x_t, t), as ONE batched network call."""
        raise NotImplementedError

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B,3,H,W] in [0,1] -> x0 in the model's space (latents, or pixels in [-1,1])."""
        raise NotImplementedError

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """x0 in the model's space -> images [B,3,H,W] in [0,1]."""
        raise NotImplementedError

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of x0 in the model's space."""
        raise NotImplementedError

    @property
    def image_size(self) -> int:
        """Side of the decoded image in pixels (pixel priors: the sample size)."""
        return self.sample_shape[-1]

    @property
    def views_per_sample(self) -> int:
        """V: rows that form one sample. 1 for text-to-image priors; V > 1 for multi-view priors
        (`priors.multiview`), which read V consecutive rows (i*V + v) as the views of one object, each with
        its camera in the conditioning, and attend across them."""
        return 1

    # --- shared -------------------------------------------------------------------------
    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    @property
    def device(self) -> torch.device:
        return self.alphas_cumprod.device

    @torch.no_grad()
    def embed(self, prompts: list[str], negative_prompt: str = "") -> TextEmbedding:
        """Cached text embeddings; the negative prompt (default "") is the unconditional input."""
        missing = sorted({p for p in prompts if (p, negative_prompt) not in self._emb_cache})
        if missing:
            states = self._embed(missing + [negative_prompt])
            for i, p in enumerate(missing):
                self._emb_cache[(p, negative_prompt)] = (states[i], states[-1])
        pairs = [self._emb_cache[(p, negative_prompt)] for p in prompts]
        return TextEmbedding(torch.stack([c for c, _ in pairs]), torch.stack([u for _, u in pairs]))

    def add_noise(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.alphas_cumprod[t].view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
        return a.sqrt() * x0 + (1 - a).sqrt() * eps


def eps_from_output(output: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor,
                    prediction_type: str) -> torch.Tensor:
    """Convert a network output to epsilon. v = sqrt(a) eps - sqrt(1-a) x0  =>  eps = sqrt(a) v +
    sqrt(1-a) x_t;  x0-prediction  =>  eps = (x_t - sqrt(a) x0) / sqrt(1-a)."""
    a = alpha_bar.view(-1, *([1] * (x_t.dim() - 1))).to(x_t.dtype)
    if prediction_type == "epsilon":
        return output
    if prediction_type == "v_prediction":
        return a.sqrt() * output + (1 - a).sqrt() * x_t
    if prediction_type == "sample":
        return (x_t - a.sqrt() * output) / (1 - a).sqrt().clamp_min(1e-8)
    raise ValueError(f"unsupported prediction_type {prediction_type!r}")
