"""Plain text-to-image sampling from a prior (DDIM, eta = 0, classifier-free guidance).

Used to measure the prior itself (world-eval) and as a baseline next to distillation. It is the
candidates' S-step preview started from pure noise, so both share one DDIM implementation.
"""

from __future__ import annotations

import torch

from .candidates import Candidates, preview
from .priors.base import DiffusionPrior


@torch.no_grad()
def sample(prior: DiffusionPrior, prompts: list[str], steps: int = 50, cfg: float = 4.0,
           generator: torch.Generator | None = None, negative_prompt: str = "",
           t_start: int | None = None, clip_x0: bool | None = None) -> torch.Tensor:
    """Images [B,3,H,W] in [0,1] for the prompts.

    t_start defaults to the last timestep whose alpha_bar >= 1e-4: at alpha_bar ~ 1e-9 (the cosine
    schedule's t = T-1) converting a v-prediction to x0 in float32 cancels catastrophically, while
    x_t there is pure noise to within 1%. clip_x0 defaults to True for pixel-space priors.
    """
    ac = prior.alphas_cumprod
    if t_start is None:
        t_start = int(torch.nonzero(ac >= 1e-4).max())
    if clip_x0 is None:
        clip_x0 = getattr(prior, "vae", None) is None
    emb = prior.embed(prompts, negative_prompt)
    x_t = torch.randn((len(prompts), *prior.sample_shape), generator=generator).to(prior.device)
    tt = torch.full((len(prompts),), t_start, dtype=torch.long, device=prior.device)
    cands = Candidates(t_start, x_t, x_t, prior.predict_eps(x_t, tt, emb))
    x0, _ = preview(prior, cands, emb, steps, cfg, clip_x0=clip_x0)
    return prior.decode(x0)
