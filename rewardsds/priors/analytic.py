"""An analytic prior for tests and demos: data ~ N(mu_prompt, s^2 I) in pixel space [-1, 1].

For Gaussian data the ideal denoiser is exact (DESIGN section 4):
``E[eps | x_t] = sqrt(1-a) (x_t - sqrt(a) mu) / (a s^2 + 1 - a)``, so SDS on it must converge to mu.
"""

from __future__ import annotations

import torch

from .base import DiffusionPrior, EpsPrediction, TextEmbedding


def cosine_alphas_cumprod(T: int = 1000) -> torch.Tensor:
    """The squared-cosine schedule (Nichol & Dhariwal 2021), betas capped at 0.999."""
    import math

    f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    betas = torch.tensor([min(1 - f(i + 1) / f(i), 0.999) for i in range(T)], dtype=torch.float64)
    return torch.cumprod(1 - betas, 0).float()


class GaussianPrior(DiffusionPrior):
    """Each prompt maps to a mean colour; the empty prompt to `uncond_mean`.

    `means`: prompt -> RGB in [0,1]. Images are `size` x `size`.
    """

    def __init__(self, means: dict[str, tuple[float, float, float]], std: float = 0.1, size: int = 8,
                 uncond_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)) -> None:
        super().__init__()
        self.means = dict(means)
        self.std, self.size, self.uncond_mean = std, size, uncond_mean
        self.register_buffer("alphas_cumprod", cosine_alphas_cumprod(), persistent=False)
        self.calls = 0  # network calls, counted so tests can check the one-call-per-step promise

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (3, self.size, self.size)

    def _embed(self, prompts: list[str]) -> torch.Tensor:
        rows = [self.means.get(p, self.uncond_mean) if p else self.uncond_mean for p in prompts]
        return (torch.tensor(rows, dtype=torch.float32) * 2 - 1)[:, None, :]  # [B, 1, 3] in [-1, 1]

    def _eps(self, x_t: torch.Tensor, t: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        a = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        s2 = (2 * self.std) ** 2  # std is given in [0,1] units; the model space is [-1,1]
        return (1 - a).sqrt() * (x_t - a.sqrt() * mu.view(-1, 3, 1, 1)) / (a * s2 + 1 - a)

    def predict_eps(self, x_t: torch.Tensor, t: torch.Tensor, emb: TextEmbedding) -> EpsPrediction:
        self.calls += 1
        t = t.expand(x_t.shape[0]) if t.dim() == 0 else t
        return EpsPrediction(self._eps(x_t, t, emb.cond[:, 0]), self._eps(x_t, t, emb.uncond[:, 0]))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images * 2 - 1

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        return ((x0 + 1) / 2).clamp(0, 1)
