"""The one optimisation loop for 2D distillation (text-to-image and editing).

    seed -> init x0 -> for each step: t ~ schedule; reward step? ; guidance -> surrogate loss ->
    Adam step (skipped, and counted, when the gradient is not finite) -> log / frame / checkpoint.

The generator is seeded before anything random (the official code draws the initial latent before
seeding). Adam has no weight decay on the image (AdamW's default 0.01 would silently shrink it).
Checkpoints hold the image, optimiser, generator state, video frames and VSD state, so `resume`
continues exactly where a killed run stopped.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import media
from .losses import Guidance
from .representations.image import ImageParam
from .schedules import TimestepSchedule, reward_active


@dataclass(frozen=True)
class LoopConfig:
    steps: int = 400
    lr: float = 0.02
    reward_steps: float = 1.0
    """K: steps that use rewards - a fraction (0, 1] of the first steps, or a count > 1; 0 = none"""
    t_min: float = 0.02
    t_max: float = 0.98
    checkpoint_every: int = 100
    frame_every: int = 10
    """a video frame every this many steps"""
    log_every: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.reward_steps < 0 or (self.reward_steps > 1 and self.reward_steps > self.steps):
            raise ValueError(f"reward_steps (K) must be a fraction in [0, 1] or a count <= steps "
                             f"({self.steps}); got {self.reward_steps}")


@dataclass
class LoopResult:
    x0: torch.Tensor
    images: torch.Tensor  # [B,3,H,W] in [0,1]
    steps_done: int
    skipped_steps: int
    prior_calls: int
    seconds: float
    frames: list[np.ndarray] = field(default_factory=list)  # uint8 [B,H,W,3] every frame_every steps


def run(guidance: Guidance, prompts: list[str], x0: torch.Tensor, cfg: LoopConfig, generator: torch.Generator,
        out_dir: Path | None = None, resume: bool = False, progress: bool = True,
        on_step: Callable[[dict], None] | None = None) -> LoopResult:
    prior = guidance.prior
    param = ImageParam(x0.to(prior.device))
    opt = torch.optim.Adam(param.parameters(), lr=cfg.lr, weight_decay=0.0)
    schedule = TimestepSchedule(cfg.t_min, cfg.t_max, num_train_timesteps=prior.num_train_timesteps)
    start, skipped, calls, seconds, frames = 0, 0, 0, 0.0, []
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / "checkpoint.pt" if out_dir is not None else None
    log_path = out_dir / "log.jsonl" if out_dir is not None else None
    if resume and ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        param.x.data.copy_(state["x"].to(param.x.device))
        opt.load_state_dict(state["opt"])
        generator.set_state(state["generator"])
        start, skipped, calls, seconds = state["step"], state["skipped"], state["prior_calls"], state["seconds"]
        frames = list(state["frames"])
        if guidance.particle is not None and state.get("particle") is not None:
            guidance.particle.load_state_dict(state["particle"])
        truncate_log(log_path, start)

    def checkpoint(step: int) -> None:
        media.atomic_torch_save({
            "x": param.x.detach().cpu(), "opt": opt.state_dict(), "generator": generator.get_state(),
            "step": step, "skipped": skipped, "prior_calls": calls, "seconds": seconds, "frames": frames,
            "particle": guidance.particle.state_dict() if guidance.particle is not None else None}, ckpt)

    def frame() -> None:
        with torch.no_grad():
            frames.append(media.to_uint8(prior.decode(param.x.detach()), upscale=1))

    log = open(log_path, "a") if log_path is not None else None  # noqa: SIM115 (closed in finally)
    try:
        if start == 0 and cfg.frame_every:
            frame()
        bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress,
                   desc="distilling", unit="step")
        for step in bar:
            t0 = time.perf_counter()
            t = schedule.sample(step, generator)
            use_reward = reward_active(step, cfg.steps, cfg.reward_steps)
            out = guidance(param(), prompts, t, use_reward, generator, step=step, total_steps=cfg.steps)
            calls += out.prior_calls
            if out.finite:
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                opt.step()
            else:
                skipped += 1
            dt = time.perf_counter() - t0
            seconds += dt
            rec = {"step": step, "t": t, "reward_step": use_reward, "grad_norm": float(out.grad.norm()),
                   "skipped": not out.finite, "prior_calls": out.prior_calls, "seconds": round(dt, 4),
                   "rewards": out.rewards.tolist() if out.rewards is not None else None,
                   "weights": out.weights.tolist() if out.weights is not None else None}
            if log is not None and step % cfg.log_every == 0:
                log.write(json.dumps(rec) + "\n")
                log.flush()
            if out.rewards is not None:
                bar.set_postfix(t=t, reward=f"{out.rewards.mean():.3f}")
            if on_step is not None:
                on_step(rec)
            if cfg.frame_every and (step + 1) % cfg.frame_every == 0:
                frame()
            if ckpt is not None and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps):
                checkpoint(step + 1)
    finally:
        if log is not None:
            log.close()
    with torch.no_grad():
        images = prior.decode(param.x.detach()).cpu()
    return LoopResult(param.x.detach().cpu(), images, cfg.steps, skipped, calls, seconds, frames)


def truncate_log(path: Path | None, step: int) -> None:
    """Drop log lines of steps >= step (they were written after the checkpoint we resume from)."""
    if path is None or not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] < step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(ln + "\n" for ln in keep))
    os.replace(tmp, path)
