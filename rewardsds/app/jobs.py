"""One run at a time, in a worker thread, watched from the page.

A `Job` is one click of Run: one or more `Stage`s (Compare has two: SDS, then RewardSDS), each a
command's run function (`run_generate`, `run_edit`, `run_gen3d`) called with a config and an
`on_step` that files the step's record into the stage's `Progress`. Stop sets an event that `on_step`
answers by raising `StopRequested` (a KeyboardInterrupt) at the end of the current step; the loop
turns it into `Interrupted`, as for Ctrl-C, keeping its last checkpoint (app runs checkpoint every
`forms.CHECKPOINT_EVERY` steps), so Resume continues the same run folder. The `Runner`'s lock makes a
second Run, from any tab or browser, fail at once with a clear "busy" message.
"""

from __future__ import annotations

import inspect
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import media
from ..errors import UserError
from .views import model_to_rgb

RATE_WINDOW = 20
"""steps/s is measured over the last this many steps"""


class StopRequested(KeyboardInterrupt):
    """Raised from `on_step` when the page asked to stop (the loop re-raises it as `Interrupted`)."""


class Busy(UserError):
    """Another run holds the app."""


@dataclass(frozen=True)
class Snapshot:
    """A consistent copy of a stage's progress, for the page (made under the progress lock)."""

    status: str
    done: int
    total: int
    history: list[tuple[int, float | None, float | None, float]]  # step, mean reward, best reward, grad norm
    image: torch.Tensor | None  # [B or V,3,H,W] in [0, 1]
    tiles: tuple[np.ndarray, list[float], list[float], int] | None  # previews uint8 [N,H,W,3], rewards, weights, step
    rate: float | None  # steps/s
    skipped: int
    version: int

    @property
    def eta(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate else None


class Progress:
    """The live state of one stage, written by the worker's `on_step`, read by the page."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.status = "waiting"
        self.done = 0
        self.history: list[tuple[int, float | None, float | None, float]] = []
        self.image: torch.Tensor | None = None
        self.tiles = None
        self.skipped = 0
        self.version = 0
        self._times: deque[tuple[float, int]] = deque(maxlen=RATE_WINDOW + 1)
        self._lock = threading.Lock()

    def set_status(self, status: str) -> None:
        with self._lock:
            self.status, self.version = status, self.version + 1

    def update(self, rec: dict) -> None:
        """File one step's record (see `loop.optimize`: step, rewards [B][N], weights, grad_norm,
        previews [B*N,3,H,W] on reward steps, x0 in model space)."""
        done = int(rec["step"]) + 1
        image = model_to_rgb(rec["x0"]) if rec.get("x0") is not None else None
        tiles, mean_r, best_r = None, None, None
        if rec.get("rewards") is not None:
            r = np.atleast_2d(np.asarray(rec["rewards"], dtype=float))  # [B, N] (2D) or [V, N] (3D)
            per_candidate = r.mean(0)  # 2D: the first (only) image's; 3D: each candidate's mean over its views
            mean_r, best_r = float(r.mean()), float(per_candidate.max())
            n = per_candidate.shape[0]
            w = rec.get("weights")
            w = np.atleast_2d(np.asarray(w, dtype=float))[0] if w is not None else np.full(n, np.nan)
            previews = rec.get("previews")
            if previews is not None:
                tiles = (media.to_uint8(previews[:n]), per_candidate.tolist(), w.tolist(), done - 1)
        with self._lock:
            self.status = "running"
            self.done = done
            self._times.append((time.monotonic(), done))
            self.history.append((done - 1, mean_r, best_r, float(rec.get("grad_norm", float("nan")))))
            self.skipped += bool(rec.get("skipped"))
            if image is not None:
                self.image = image
            if tiles is not None:
                self.tiles = tiles
            self.version += 1

    def rate(self) -> float | None:
        if len(self._times) < 2:
            return None
        (t0, s0), (t1, s1) = self._times[0], self._times[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else None

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(self.status, self.done, self.total, list(self.history), self.image, self.tiles,
                            self.rate(), self.skipped, self.version)


@dataclass
class Stage:
    """One command run of a job."""

    label: str
    fn: Callable[..., dict]
    cfg: Any
    progress: Progress = None  # type: ignore[assignment]
    result: dict | None = None
    error: str | None = None
    stopped_at: int | None = None
    checkpoint_step: int | None = None

    def __post_init__(self) -> None:
        if self.progress is None:
            self.progress = Progress(int(self.cfg.steps))

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def status(self) -> str:
        return self.progress.status


@dataclass
class Job:
    owner: str
    kind: str
    stages: list[Stage]
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    stop_event: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def current(self) -> Stage:
        """The stage running now (or the last one to have run)."""
        for s in self.stages:
            if s.status in ("loading", "running"):
                return s
        started = [s for s in self.stages if s.status != "waiting"]
        return started[-1] if started else self.stages[0]

    @property
    def error(self) -> str | None:
        return next((s.error for s in self.stages if s.error), None)

    def describe(self) -> str:
        s = self.current
        return f"{self.kind} ({s.label}, step {s.progress.done}/{s.progress.total})"


def call_run(fn: Callable[..., dict], cfg, on_step, models) -> dict:
    """`fn(cfg, on_step=...)`, handing it the app's model cache where the run function takes one."""
    if models is not None and "models" in inspect.signature(fn).parameters:
        return fn(cfg, on_step=on_step, models=models)
    return fn(cfg, on_step=on_step)


class Runner:
    """Runs one job at a time (any tab, any browser); owns the model cache the runs load through."""

    def __init__(self, models=None) -> None:
        self.models = models
        self._lock = threading.Lock()
        self._guard = threading.Lock()  # for self.job
        self.job: Job | None = None

    def start(self, owner: str, kind: str, stages: list[Stage]) -> Job:
        if not self._lock.acquire(blocking=False):
            job = self.job
            what = job.describe() if job is not None else "a run"
            mine = " from this tab" if job is not None and job.owner == owner else " from another tab or browser"
            raise Busy(f"busy: {what} is running{mine}; one run at a time. Wait for it to finish, or press Stop "
                       "in the tab that started it")
        job = Job(owner, kind, stages)
        try:
            with self._guard:
                self.job = job
            job.thread = threading.Thread(target=self._work, args=(job,), name=f"rewardsds-app-{kind}-{job.id}",
                                          daemon=True)
            job.thread.start()
        except BaseException:
            job.finished.set()
            self._lock.release()
            raise
        return job

    def stop(self, owner: str) -> str:
        """Ask the job of `owner` (a session's tab) to stop; what happened, in words."""
        with self._guard:
            job = self.job
        if job is None or job.finished.is_set() or job.owner != owner:
            return "nothing started from this tab is running"
        job.stop_event.set()
        return f"stopping {job.describe()} at the end of the current step"

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop the running job (it checkpoints) and wait for its thread: the server is going down."""
        with self._guard:
            job = self.job
        if job is not None and not job.finished.is_set():
            job.stop_event.set()
            job.finished.wait(timeout)

    def _work(self, job: Job) -> None:
        try:
            for stage in job.stages:
                if job.stop_event.is_set():
                    break
                if not self._run_stage(job, stage):
                    break
        finally:
            job.finished.set()
            self._lock.release()

    def _run_stage(self, job: Job, stage: Stage) -> bool:
        """Run one stage; False when the job should not go on (stopped or failed)."""
        total = stage.progress.total

        def on_step(rec: dict) -> None:
            stage.progress.update(rec)
            if job.stop_event.is_set() and int(rec["step"]) + 1 < total:
                raise StopRequested

        stage.progress.set_status("loading")
        try:
            stage.result = call_run(stage.fn, stage.cfg, on_step, self.models)
        except KeyboardInterrupt as e:  # Stop (StopRequested -> loop.Interrupted), or the server going down
            stage.stopped_at = getattr(e, "step", stage.progress.done)
            if getattr(e, "checkpoint", None) is not None:
                every = stage.cfg.checkpoint_every or 1
                stage.checkpoint_step = stage.stopped_at // every * every
            stage.progress.set_status("stopped")
            return False
        except UserError as e:
            stage.error = str(e)
        except Exception as e:  # a bug, out of memory, ...: one line on the page, the traceback in the server log
            traceback.print_exc(file=sys.stderr)
            stage.error = f"the run failed: {type(e).__name__}: {e} (the server's log has the details)"
        else:
            stage.progress.set_status("done")
            return True
        stage.progress.set_status("failed")
        return False
