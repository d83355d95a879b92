"""Measuring: peak memory (RSS high-water mark, CUDA max allocated), wall and CPU seconds, per-network call
logs (U-Net calls and samples, decodes, reward images) and a method's per-step figures; and a child
process's own peak RSS and CPU seconds."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from .common import GIB


class Memory:
    """Peak memory since `reset`: RSS high-water mark (Linux: /proc/self/clear_refs resets VmHWM; elsewhere
    the process's lifetime peak from getrusage) and, on CUDA, torch's max allocated."""

    def __init__(self, device, thorough: bool = True) -> None:
        self.cuda = device.type == "cuda"
        self.resettable = Path("/proc/self/clear_refs").exists()
        self.thorough = thorough  # collect garbage and trim the heap first (~0.4 s; skipped at --tiny sizes)

    def reset(self) -> None:
        import torch

        if self.thorough:
            gc.collect()
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so the next peak starts low
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        if self.resettable:
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self.resettable = False

    def rss_gib(self) -> float:
        """Resident set size now."""
        return _status_kib("VmRSS") / 1024**2

    def peak(self) -> dict:
        import torch

        if self.resettable:
            rss, how = _status_kib("VmHWM") / 1024**2, "since reset"
        else:
            import resource

            scale = 1 if sys.platform == "darwin" else 1024
            rss, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / GIB, "process lifetime"
        out = {"peak_rss_gib": round(rss, 2), "rss_peak_kind": how}
        if self.cuda:
            out["cuda_max_allocated_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 2)
        return out


def _status_kib(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def _now() -> tuple[float, float]:
    """(wall, this process's CPU) seconds. With one torch thread, CPU seconds are the work done: unlike wall
    time they hardly move when other processes share the cores."""
    return time.perf_counter(), time.process_time()


class CallLog:
    """Calls, samples (batch rows), wall and CPU seconds per named network: forward hooks on modules,
    wrappers on methods (the VAE's decode, a reward's score). CUDA is synchronised around each call."""

    def __init__(self, device) -> None:
        self.cuda = device.type == "cuda"
        self.rows: dict[str, list] = defaultdict(lambda: [0, 0, 0.0, 0.0])

    def _sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def _add(self, name: str, samples: int, start: tuple[float, float]) -> None:
        self._sync()
        wall, cpu = _now()
        row = self.rows[name]
        row[0], row[1] = row[0] + 1, row[1] + samples
        row[2], row[3] = row[2] + wall - start[0], row[3] + cpu - start[1]

    def start(self) -> tuple[float, float]:
        self._sync()
        return _now()

    def module(self, module, name: str) -> None:
        started = {}

        def pre(mod, args, kwargs):
            if mod is not module:  # a deepcopy of the module (VSD's particle model) carries these hooks too
                return
            x = args[0] if args else kwargs["sample"]
            started["b"], started["t"] = x.shape[0], self.start()

        def post(mod, args, kwargs, out):
            if mod is module:
                self._add(name, started["b"], started["t"])

        module.register_forward_pre_hook(pre, with_kwargs=True)
        module.register_forward_hook(post, with_kwargs=True)

    def method(self, obj, attr: str, name: str) -> None:
        fn = getattr(obj, attr)

        def timed(x, *args, **kwargs):
            t0 = self.start()
            out = fn(x, *args, **kwargs)
            self._add(name, x.shape[0], t0)
            return out

        setattr(obj, attr, timed)

    def snapshot(self) -> dict[str, tuple]:
        return {k: tuple(v) for k, v in self.rows.items()}

    @staticmethod
    def diff(after: dict, before: dict, steps: int) -> dict[str, dict]:
        out = {}
        for k, now in after.items():
            c, s, wall, cpu = (a - b for a, b in zip(now, before.get(k, (0, 0, 0.0, 0.0))))
            if c:
                out[k] = {"calls": c / steps, "samples": s / steps, "seconds": wall / steps, "cpu_seconds": cpu / steps}
        return out


def measure(name: str, fn, steps: int, log: CallLog, mem: Memory, **info) -> dict:
    """Run ``fn(steps)`` (it does ``steps`` optimisation steps) and return its per-step figures."""
    mem.reset()
    before = log.snapshot()
    t0 = log.start()
    fn(steps)
    log._sync()
    wall, cpu = ((b - a) / steps for a, b in zip(t0, _now()))
    row = {"name": name, "s_per_step": round(wall, 3), "cpu_s_per_step": round(cpu, 3), "steps_timed": steps, **info,
           "per_step": CallLog.diff(log.snapshot(), before, steps), **mem.peak()}
    print(f"  measured {name}: {wall:.2f} s/step wall, {cpu:.2f} s/step CPU, peak RSS {row['peak_rss_gib']:.2f} GiB",
          flush=True)
    return row


def run_child(cmd: list[str], capture: bool = False) -> tuple[int, dict, str, str]:
    """Run ``cmd``; (exit code, {peak_rss_gib, cpu_s} of the child itself from os.wait4 where available,
    stdout, stderr). Output goes to temporary files when captured (no pipe to drain while waiting)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out if capture else None, stderr=err if capture else None)
        usage = {"peak_rss_gib": None, "cpu_s": None}
        if hasattr(os, "wait4"):
            _, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            usage = {"peak_rss_gib": round(ru.ru_maxrss * (1 if sys.platform == "darwin" else 1024) / GIB, 2),
                     "cpu_s": round(ru.ru_utime + ru.ru_stime, 1)}
        else:
            proc.wait()
        out.seek(0)
        err.seek(0)
        return proc.returncode, usage, out.read(), err.read()
