"""What is timed: steps of our engine's loop (`loop.optimize`) and the official RewardSDS code's call pattern
(2D and 3D) re-expressed on the same prior, and the U-Net calls and samples per step each makes at a
preset, for the paper-full extrapolation."""

from __future__ import annotations

from .common import PROMPT

# --- our engine and the official call pattern ---------------------------------------------------------------

def ours(prior, reward, method: str, n: int, s: int, preview_schedule: str = "from-t", cfg: float = 100.0,
         lora_rank: int = 0, seed: int = 0):
    """fn(steps): ``steps`` steps of the library's loop (`loop.optimize` on an `ImageRepresentation`: what
    `loop.run` does, without its final decode) with every step a reward step."""
    import torch

    from rewardsds.loop import LoopConfig, optimize
    from rewardsds.losses import GuidanceConfig, build_guidance
    from rewardsds.representations.image import ImageRepresentation, init_image

    gcfg = GuidanceConfig(method=method, cfg=cfg, n_noises=n, denoise_steps=s, preview_schedule=preview_schedule,
                          vsd_lora_rank=lora_rank)
    guidance = build_guidance(gcfg, prior, reward if gcfg.uses_reward else None, generator_seed=seed)
    gen = torch.Generator().manual_seed(seed)
    x0 = init_image(prior, "noise", 1, gen)

    def fn(steps: int) -> None:
        rep = ImageRepresentation(x0, [PROMPT], prior)
        optimize(rep, guidance, LoopConfig(steps=steps, lr=0.01, reward_steps=1.0, frame_every=0), gen,
                 progress=False)

    fn.guidance = guidance
    return fn


def official(prior, reward, n: int, s: int, kind: str, cfg: float = 100.0, preview_cfg: float = 7.5, seed: int = 0):
    """fn(steps): the official RewardSDS code's call pattern, re-expressed on our prior's modules.

    2D (2D_experiments/guidance.py): N noisy latents at t; `explore_direction` runs DDIM (diffusers'
    scheduler, ``set_timesteps(S)``: "leading" spacing, steps_offset 1) over the fixed grid from the first
    grid step <= t down, every call batched over the N candidates with CFG 7.5; decode all N, score; keep the
    top-2 and bottom-2 (`MinMaxRewardStrategy`; N < 4: top-1 and bottom-1); then a SEPARATE U-Net pass at t on the kept
    candidates for the SDS gradient (CFG 100).
    3D (threestudio-reward-sds/guidance/reward_mvdream_guidance.py, on SD with one view): per candidate,
    its own noise, DDIM from t on ``linspace(0, T-1, S)`` (t prepended), decode, score, then the pass at t,
    identical to the preview's first call, repeated; all N candidates enter the loss."""
    import numpy as np
    import torch
    from diffusers import DDIMScheduler

    from rewardsds.loop import LoopConfig

    unet, T = prior.unet, prior.num_train_timesteps
    ac = prior.alphas_cumprod
    sched = DDIMScheduler.from_config(prior.scheduler.config)
    sched.set_timesteps(s)
    grid2d = [int(g) for g in sched.timesteps]
    grid3d = [int(g) for g in np.linspace(0, T - 1, s, dtype=int)[::-1]]
    schedule = LoopConfig().schedule(T)
    gen = torch.Generator().manual_seed(seed)
    from rewardsds.representations.image import init_image

    x = torch.nn.Parameter(init_image(prior, "noise", 1, gen).to(prior.device))
    opt = torch.optim.Adam([x], lr=0.01, weight_decay=0.0)
    emb = prior.embed([PROMPT])
    dt = prior.dtype

    def eps_cfg(lat, tau, scale):
        b = lat.shape[0]
        ctx = torch.cat([emb.cond.expand(b, -1, -1), emb.uncond.expand(b, -1, -1)]).to(dt)
        tt = torch.full((2 * b,), int(tau), dtype=torch.long, device=lat.device)
        out = unet(torch.cat([lat, lat]).to(dt), tt, encoder_hidden_states=ctx).sample.float()
        cond, uncond = out.chunk(2)
        return uncond + scale * (cond - uncond)

    def x0_of(lat, e, tau):
        a = ac[tau]
        return (lat - (1 - a).sqrt() * e) / a.sqrt()

    def step(i: int) -> None:
        t = schedule.sample(i, gen)
        w = 1 - ac[t]
        with torch.no_grad():
            if kind == "2d":
                eps = torch.randn((n, *x.shape[1:]), generator=gen).to(x.device)
                x_t = prior.add_noise(x.detach().expand(n, -1, -1, -1), eps, torch.full((n,), t, device=x.device))
                lat = x_t
                for tau in grid2d:
                    if tau > t:
                        continue
                    lat = sched.step(eps_cfg(lat, tau, preview_cfg), tau, lat).prev_sample
                rewards = reward(prior.decode(lat), [PROMPT] * n)
                k = kept_per_side(n)  # rows may repeat on ties, as in the official code
                keep = torch.cat([rewards.topk(k).indices, (-rewards).topk(k).indices])
                resid = eps_cfg(x_t[keep], t, cfg) - eps[keep]
                wts = torch.full((len(keep),), 1.0 / len(keep), device=x.device)
            else:
                resids, rewards = [], []
                for _ in range(n):
                    eps = torch.randn(x.shape, generator=gen).to(x.device)
                    x_t = prior.add_noise(x.detach(), eps, torch.full((1,), t, device=x.device))
                    points = [g for g in grid3d if g <= t]
                    points = points if points and points[0] == t else [t, *points]
                    lat = x_t
                    for tau, nxt in zip(points[:-1], points[1:]):
                        x0 = x0_of(lat, eps_cfg(lat, tau, cfg), tau)
                        e = (lat - ac[tau].sqrt() * x0) / (1 - ac[tau]).sqrt()
                        lat = ac[nxt].sqrt() * x0 + (1 - ac[nxt]).sqrt() * e
                    rewards.append(reward(prior.decode(lat), [PROMPT])[0])
                    resids.append(eps_cfg(x_t, t, cfg) - eps)  # the call at t again
                resid = torch.cat(resids)
                wts = torch.full((n,), 1.0 / n, device=x.device)
            grad = torch.nan_to_num(w * (wts.view(-1, 1, 1, 1) * resid).sum(0, keepdim=True))
        loss = 0.5 * (x - (x - grad).detach()).pow(2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def fn(steps: int) -> None:
        for i in range(steps):
            step(i)

    return fn


def kept_per_side(n: int) -> int:
    """The official 2D `MinMaxRewardStrategy` keeps the top 2 and bottom 2 (it asserts N >= 4; fewer here)."""
    return max(1, min(2, n // 2))


def expected_calls(n: int, s: int, t_lo: int = 20, t_hi: int = 980, T: int = 1000) -> dict[str, float]:
    """U-Net SAMPLES per step (CFG counts 2 per candidate) averaged over t ~ U{t_lo..t_hi}, for a paper-full
    extrapolation: ours ("from-t": S calls; "global": 1 + grid points below t), the official 2D pattern
    (grid steps <= t of diffusers' leading S-step grid + the separate pass on the 4 kept candidates) and 3D
    (per candidate: the linspace grid below t + the repeated pass at t)."""
    import numpy as np

    from rewardsds.candidates import preview_grid

    ts = range(t_lo, t_hi + 1)
    lead = [k * (T // s) + 1 for k in range(s)]  # DDIMScheduler leading spacing, steps_offset=1
    lin = [int(g) for g in np.linspace(0, T - 1, s, dtype=int)]
    kept = 2 * kept_per_side(n)

    def mean(f):
        return sum(f(t) for t in ts) / len(ts)

    calls = {
        "ours from-t": mean(lambda t: len(preview_grid(t, s, "from-t", T))),
        "ours global": mean(lambda t: len(preview_grid(t, s, "global", T))),
        "official 2D": mean(lambda t: sum(g <= t for g in lead) + 1),
        "official 3D": mean(lambda t: n * (len({t, *[g for g in lin if g <= t]}) - 1 + 1)),
    }
    samples = {"ours from-t": calls["ours from-t"] * 2 * n, "ours global": calls["ours global"] * 2 * n,
               "official 2D": (calls["official 2D"] - 1) * 2 * n + 2 * kept,
               "official 3D": calls["official 3D"] * 2}
    return {"calls": calls, "samples": samples}
