"""Plain text-to-image sampling from a prior (DDIM, eta = 0, classifier-free guidance).

Used to measure the prior itself (world-eval, and the multi-view gate `world3d.evaluate_mv`) and as a baseline
next to distillation. It is the candidates' S-step preview started from pure noise, so both share one DDIM
implementation.
"""

from __future__ import annotations

import torch

from .candidates import Candidates, preview
from .errors import RewardError
from .priors.base import DiffusionPrior


@torch.no_grad()
def sample(prior: DiffusionPrior, prompts: list[str], steps: int = 50, cfg: float = 4.0,
           generator: torch.Generator | None = None, negative_prompt: str = "",
           t_start: int | None = None, clip_x0: bool | None = None, cameras: torch.Tensor | None = None
           ) -> torch.Tensor:
    """Images [B,3,H,W] in [0,1] for the prompts (one image, one row, per prompt).

    A multi-view prior (`priors.multiview`, `views_per_sample` V > 1) draws the V views of a sample together:
    the rows come in sets of V (row i*V + v is view v of sample i, its prompt repeated V times), each told its
    camera by `cameras`, c2w [B,4,4], one per row (`priors.base.Conditioning.with_cameras`; single-view
    priors ignore them).

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
    if cameras is not None:
        emb = emb.with_cameras(cameras.to(prior.device))
    x_t = torch.randn((len(prompts), *prior.sample_shape), generator=generator).to(prior.device)
    tt = torch.full((len(prompts),), t_start, dtype=torch.long, device=prior.device)
    cands = Candidates(t_start, x_t, x_t, prior.predict_eps(x_t, tt, emb), views=prior.views_per_sample)
    x0, _ = preview(prior, cands, emb, steps, cfg, clip_x0=clip_x0)
    return prior.decode(x0)


@torch.no_grad()
def best_of_samples(prior: DiffusionPrior, prompts: list[str], n: int, reward=None, steps: int = 20,
                    cfg: float = 4.0, generator: torch.Generator | None = None, negative_prompt: str = ""
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Reward-weighted initialisation: for each prompt, `n` DDIM samples and the one `reward` scores
    highest, argmax_i r(x_i, y) (the first sample when there is no reward: a plain prior sample).

    Returns (images [B,3,H,W] in [0,1] on the CPU, rewards [B, n] or None). Distillation settles an
    image's layout in its first steps and seldom moves objects afterwards, so the layout is picked here,
    where the prior at a low guidance scale still draws varied ones."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    expanded = [p for p in prompts for _ in range(n)]
    images = sample(prior, expanded, steps, cfg, generator, negative_prompt).float().cpu()
    images = images.view(len(prompts), n, *images.shape[1:])
    if reward is None:
        return images[:, 0], None
    try:
        scores = torch.as_tensor(reward(images.flatten(0, 1), expanded)).float().cpu().view(len(prompts), n)
    except ValueError as e:  # as in the loop: the reward contract's message names the reward and what is wrong
        raise RewardError(str(e)) from e
    return images[torch.arange(len(prompts)), scores.argmax(1)], scores
