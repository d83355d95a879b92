"""Where the sweep's runs execute: a local process pool or Ray tasks, behind one small interface
(``slots``, ``submit(task)``, ``wait(handles, timeout)`` -> ``[(handle, result)]``, ``close()``), plus
the setup of the worker processes themselves.

A worker process that dies (killed, out of memory) breaks the whole local pool, and every run in
flight fails with it: `LocalBackend.wait` hands them all back with ``crashed`` = how many died, and the
driver (`runner._drive`) re-runs that batch one run at a time. Local workers die with their driver
(`_die_with_parent`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    from .config import SweepConfig

CRASHED = "the worker process died (killed, or out of memory)"


def make_backend(cfg: SweepConfig, fn: Callable[[dict], dict], todo: int):
    if cfg.ray is not None:
        return RayBackend(cfg.ray, fn, cfg.workers, cfg.ray_gpus)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return LocalBackend(fn, cfg.workers or max(1, min(cores, todo)))


def init_worker(driver_pid: int | None = None) -> None:
    """Parallel runs each get one thread (N workers x M threads on N cores only thrash) and keep
    model-loading progress bars out of the sweep's own bar. With ``driver_pid`` (the local pool's
    initializer), the worker also dies with its driver (`_die_with_parent`)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    if driver_pid is not None:
        _die_with_parent(driver_pid)


PARENT_POLL_S = 1.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid`` (the sweep driver) dies, even by SIGKILL.

    A pool worker blocks on its task queue, whose write end every worker holds too, so a killed
    driver would leave its workers (each with a prior loaded) waiting forever. On Linux the kernel
    sends SIGTERM when the parent dies (``prctl(PR_SET_PDEATHSIG)``; strictly when the *thread* that
    started the worker ends, and the driver starts its pool from the thread that runs the sweep,
    which outlives the pool). Everywhere, and as a backstop if SIGTERM is ignored, a daemon thread
    compares ``os.getppid()`` with the driver's pid every `PARENT_POLL_S` seconds: an orphan is
    re-parented, so its parent pid changes. A driver already gone before this ran is caught at once."""
    import signal
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl (e.g. a static build): the thread still works
            pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="rewardsds-parent-watch", daemon=True).start()


class LocalBackend:
    """A spawn-context ProcessPoolExecutor (fork would copy a driver that may hold CUDA or threads)
    whose workers end when the driver does."""

    def __init__(self, fn: Callable[[dict], dict], workers: int) -> None:
        self.fn, self.slots = fn, workers
        self.pool = None
        self.pool_of: dict = {}  # future -> the pool that runs it

    def _pool(self):
        if self.pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(self.slots, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=init_worker, initargs=(os.getpid(),))
        return self.pool

    def submit(self, task: dict):
        from concurrent.futures.process import BrokenProcessPool

        try:
            fut = self._pool().submit(self.fn, task)
        except BrokenProcessPool:  # a worker died since the last wait(): its runs come back there,
            self.pool = None  # this one never started, so it goes to a fresh pool
            fut = self._pool().submit(self.fn, task)
        self.pool_of[fut] = self.pool
        return fut

    def wait(self, handles: list, timeout: float) -> list[tuple[object, dict]]:
        """Results of the handles done within timeout. A crash breaks the whole pool: every run it held
        comes back at once with ``crashed`` = how many died, so that a lone crash names its culprit."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        done, _ = wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        n_crashed = 1
        broken = [self.pool_of[f] for f in done if isinstance(f.exception(), BrokenProcessPool)]
        if broken:  # the rest of that pool's futures fail within moments; collect them together
            group = [h for h in handles if self.pool_of.get(h) is broken[0]]
            done = set(done) | wait(group, timeout=120).done
            n_crashed = sum(f.done() and isinstance(f.exception(), BrokenProcessPool) for f in group)
            broken[0].shutdown(wait=False, cancel_futures=True)
            if self.pool is broken[0]:
                self.pool = None  # a broken pool accepts nothing more: the next submit starts a fresh one
        out = []
        for fut in done:
            self.pool_of.pop(fut, None)
            exc = fut.exception()
            if exc is None:
                out.append((fut, fut.result()))
            elif isinstance(exc, BrokenProcessPool):
                out.append((fut, {"ok": False, "error": CRASHED, "crashed": n_crashed}))
            else:  # e.g. a result that did not unpickle
                out.append((fut, {"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


class RayBackend:
    """Ray tasks (1 CPU each, no automatic retries: the driver decides) on an existing cluster
    ('auto', 'ray://host:port') or on a fresh local instance ('local')."""

    def __init__(self, address: str, fn: Callable[[dict], dict], workers: int, gpus: float) -> None:
        try:
            import ray
        except ImportError as e:
            raise UserError("--ray needs Ray, an optional extra: pip install 'rewardsds[ray]'") from e
        self.ray, self.started = ray, False
        if not ray.is_initialized():
            local = address == "local"
            try:
                ray.init(address=None if local else address, num_cpus=(workers or None) if local else None,
                         include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise UserError(f"cannot connect to Ray at {address!r}: {e}") from e
            self.started = True
        opts = {"num_cpus": 1, "max_retries": 0, **({"num_gpus": gpus} if gpus else {})}
        self.remote = ray.remote(**opts)(fn)
        self.slots = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def submit(self, task: dict):
        return self.remote.remote(task)

    def wait(self, handles: list, timeout: float) -> list[tuple[object, dict]]:
        ready, rest = self.ray.wait(handles, num_returns=1, timeout=timeout)
        if ready and rest:
            ready += self.ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        out = []
        for ref in ready:
            try:
                out.append((ref, self.ray.get(ref)))
            except self.ray.exceptions.RayError as e:  # worker or node died, out of memory, ...
                out.append((ref, {"ok": False, "error": f"{CRASHED}: {type(e).__name__}: {e}"}))
        return out

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
