"""The one optimisation loop, for every representation (2D image, 3D field, ...):

    for each step:
        views = representation.views(step)            # x0 in the prior's space, prompts
        t ~ schedule(step); reward step? (K); bridge stage 2?
        guidance -> surrogate loss (+ views.extra_loss) -> Adam step
            (skipped, and counted, when the gradient is not finite)
        representation.after_step(step, optimizer)
        log line / progress / on_step(record) / video frame / checkpoint

The generator is seeded by the caller before anything random (the official code draws the initial
latent before seeding). Adam has no weight decay (AdamW's default 0.01 would silently shrink an
image). One checkpoint, written through `rewardsds.checkpoints` (no pickle), holds everything a run
needs to continue exactly: step, counters, representation, optimiser, generator, guidance state
(VSD's particle model and its own generator) and video frames. SIGINT/SIGTERM finish the current
step, write a checkpoint and raise `Interrupted`, so Ctrl-C never loses more than one step.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import checkpoints, media
from .losses import Guidance
from .representations.base import Representation
from .representations.image import ImageRepresentation
from .schedules import TimestepSchedule, bridge_stage2, reward_active


@dataclass(frozen=True)
class LoopConfig:
    steps: int = 400
    lr: float = 0.02
    reward_steps: float = 1.0
    """K: steps that use rewards - a fraction (0, 1] of the first steps, or a count > 1; 0 = none"""
    t_min: float = 0.02
    t_max: float = 0.98
    t_anneal_to: float | None = None
    """upper timestep bound at the end of a linear annealing (fraction of T); None keeps t_max"""
    t_anneal_steps: int = 0
    t_min_anneal_to: float | None = None
    """lower timestep bound at the end of the annealing (fraction of T); None keeps t_min"""
    checkpoint_every: int | None = 100
    """a checkpoint every this many steps (None: a tenth of the run, at most 100); always at the end"""
    frame_every: int = 10
    """a video frame every this many steps (0: none)"""
    log_every: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        check_reward_steps(self.reward_steps, self.steps)
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.frame_every < 0 or self.log_every < 1:
            raise ValueError(f"frame_every must be >= 0 and log_every >= 1, got {self.frame_every}, "
                             f"{self.log_every}")
        self.schedule(1000)  # its own checks (0 <= t_min < t_max <= 1, annealing targets inside)

    @property
    def checkpoint_interval(self) -> int:
        return self.checkpoint_every or max(1, min(100, math.ceil(self.steps / 10)))

    def schedule(self, num_train_timesteps: int) -> TimestepSchedule:
        return TimestepSchedule(self.t_min, self.t_max, self.t_anneal_to, self.t_anneal_steps, num_train_timesteps,
                                anneal_min_to=self.t_min_anneal_to)


def check_reward_steps(k: float, steps: int) -> None:
    if not math.isfinite(k) or k < 0 or (k > 1 and (k > steps or k != int(k))):
        raise ValueError(f"reward_steps (K) must be a fraction in [0, 1] or a whole count <= steps ({steps}); "
                         f"got {k}")


@dataclass
class LoopResult:
    steps_done: int
    skipped_steps: int
    prior_calls: int
    seconds: float
    frames: list[np.ndarray] = field(default_factory=list)  # uint8 [B,H,W,3] every frame_every steps
    x0: torch.Tensor | None = None  # 2D: the optimised image in model space (see `run`)
    images: torch.Tensor | None = None  # 2D: decoded [B,3,H,W] in [0,1]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: the loop stopped after `step` steps; `checkpoint` holds them (or is None)."""

    def __init__(self, step: int, checkpoint: Path | None) -> None:
        super().__init__(f"interrupted after step {step}")
        self.step, self.checkpoint = step, checkpoint


def optimize(rep: Representation, guidance: Guidance, cfg: LoopConfig, generator: torch.Generator,
             out_dir: Path | None = None, resume: bool = False, progress: bool = True,
             on_step: Callable[[dict], None] | None = None, run_id: dict | None = None,
             desc: str = "distilling") -> LoopResult:
    """Run `cfg.steps` steps of guidance on `rep` (module docstring). `run_id` identifies the run in
    its checkpoint: resuming a checkpoint whose run_id differs is refused (CheckpointError)."""
    prior = guidance.prior
    opt = torch.optim.Adam(rep.param_groups(cfg.lr), weight_decay=0.0)
    schedule = cfg.schedule(prior.num_train_timesteps)
    start, skipped, calls, seconds, frames = 0, 0, 0, 0.0, []
    ckpt = log_path = None
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        ckpt, log_path = Path(out_dir) / checkpoints.CHECKPOINT_NAME, Path(out_dir) / "log.jsonl"
    if resume and ckpt is not None and ckpt.exists():
        state, meta = checkpoints.load_state(ckpt)
        check_same_run(meta.get("run_id"), run_id, ckpt)
        rep.load_state_dict(state["representation"])
        opt.load_state_dict(state["optimizer"])
        checkpoints.restore_generator(generator, state["generator"])
        guidance.load_state_dict(state["guidance"])
        start = int(state["step"])
        skipped, calls, seconds = (state["counters"][k] for k in ("skipped", "prior_calls", "seconds"))
        frames = list(state["frames"])
    truncate_log(log_path, start)  # lines past the checkpoint (or all, on a fresh start) are stale

    def checkpoint(step: int) -> None:
        state = {"step": step, "counters": {"skipped": skipped, "prior_calls": calls, "seconds": seconds},
                 "representation": rep.state_dict(), "optimizer": opt.state_dict(),
                 "generator": generator.get_state(), "guidance": guidance.state_dict(), "frames": frames}
        checkpoints.save_state(ckpt, state, meta={"run_id": run_id})

    def add_frame() -> None:
        f = rep.frame()
        if f is not None:
            frames.append(f)

    done = start
    log = open(log_path, "a") if log_path is not None else None  # noqa: SIM115 (closed in finally)
    try:
        with _stop_requests() as stop:
            if start == 0 and cfg.frame_every:
                add_frame()
            bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress, desc=desc,
                       unit="step")
            for step in bar:
                t0 = time.perf_counter()
                views = rep.views(step, generator)
                t = schedule.sample(step, generator)
                use_reward = reward_active(step, cfg.steps, cfg.reward_steps)
                stage2 = bridge_stage2(step, cfg.steps, guidance.cfg.bridge_switch)
                out = guidance(views.x0, views.prompts, t, use_reward, generator, shared=views.shared,
                               second_stage=stage2, cameras=views.cameras, reward_prompts=views.reward_prompts)
                calls += out.prior_calls
                if out.finite:
                    loss = out.loss if views.extra_loss is None else out.loss + views.extra_loss
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                else:
                    skipped += 1
                rep.after_step(step, opt)
                dt = time.perf_counter() - t0
                seconds += dt
                done = step + 1
                rec = {"step": step, "t": t, "reward_step": out.rewards is not None, **views.log,
                       "grad_norm": float(out.grad.norm()), "skipped": not out.finite,
                       "prior_calls": out.prior_calls, "seconds": round(dt, 4),
                       "rewards": out.rewards.tolist() if out.rewards is not None else None,
                       "weights": _weights_for_log(out.weights, views.shared)}
                if out.rewards is not None and views.cameras is not None:
                    # 3D: the text each row (view) of "rewards" was scored against, in order, so that a
                    # reward's scores can be read back per view (the prior's own prompts are logged as a set)
                    rec["reward_prompts"] = list(views.reward_prompts or views.prompts)
                if log is not None and step % cfg.log_every == 0:
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                if out.rewards is not None:
                    bar.set_postfix(t=t, reward=f"{out.rewards.mean():.4g}")
                if on_step is not None:  # live views (the app, diagnostics) also get the candidates' previews
                    on_step({**rec, "previews": out.previews, "x0": views.x0.detach()})  # x0: model space
                if cfg.frame_every and done % cfg.frame_every == 0:
                    add_frame()
                if ckpt is not None and (done % cfg.checkpoint_interval == 0 or done == cfg.steps):
                    checkpoint(done)
                if stop.is_set():
                    if ckpt is not None and done % cfg.checkpoint_interval and done != cfg.steps:
                        checkpoint(done)
                    raise Interrupted(done, ckpt)
    except KeyboardInterrupt as e:
        if isinstance(e, Interrupted):
            raise
        # a second Ctrl-C (or one outside a step boundary): keep what the last checkpoint holds
        raise Interrupted(done, ckpt if ckpt is not None and ckpt.exists() else None) from e
    finally:
        if log is not None:
            log.close()
    return LoopResult(cfg.steps, skipped, calls, seconds, frames)


def _weights_for_log(weights: torch.Tensor | None, shared: bool):
    if weights is None:
        return None
    return weights[0].tolist() if shared else weights.tolist()  # shared: one row for all views


@contextmanager
def _stop_requests() -> Iterator[threading.Event]:
    """The first SIGINT/SIGTERM sets the event (the loop stops at the end of the step, after a
    checkpoint); a second SIGINT interrupts at once. Handlers are only installed in the main thread."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def check_same_run(saved: dict | None, current: dict | None, path: Path) -> None:
    """Refuse to continue another run's checkpoint (another prompt, method, N ...)."""
    if saved is None or current is None:
        return
    diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if diff:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in diff[:4])
        raise checkpoints.CheckpointError(
            f"{str(path)!r} belongs to another run ({shown}{', ...' if len(diff) > 4 else ''}); resume with the "
            "same settings, or use another --out (or --overwrite to start again here)")


def truncate_log(path: Path | None, step: int) -> None:
    """Drop log lines of steps >= step (written after the checkpoint we resume from; all of them on a
    fresh start, so a run that restarts without a checkpoint never repeats lines)."""
    if path is None or not path.exists():
        return
    keep = []
    for ln in path.read_text().splitlines():
        try:
            if ln and json.loads(ln)["step"] < step:
                keep.append(ln)
        except (ValueError, KeyError, TypeError):
            break  # a line cut by a kill: nothing after it is trustworthy
    media.save_text(path, "".join(ln + "\n" for ln in keep))


def run(guidance: Guidance, prompts: list[str], x0: torch.Tensor, cfg: LoopConfig, generator: torch.Generator,
        out_dir: Path | None = None, resume: bool = False, progress: bool = True,
        on_step: Callable[[dict], None] | None = None, run_id: dict | None = None) -> LoopResult:
    """2D convenience: optimise the image(s) `x0` (model space) for `prompts` with `optimize`."""
    rep = ImageRepresentation(x0, prompts, guidance.prior)
    result = optimize(rep, guidance, cfg, generator, out_dir, resume, progress, on_step, run_id)
    result.x0, result.images = rep.x.detach().cpu(), rep.images()
    return result
