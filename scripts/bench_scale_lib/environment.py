"""The environment a run records: date, command, CPU and GPU, library versions, load average, and how much
slower bf16 is than fp32 on this CPU."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from pathlib import Path


def _environment(argv: list[str]) -> dict:
    import diffusers
    import torch
    import transformers

    try:
        import peft

        peft_v = peft.__version__
    except ImportError:
        peft_v = "absent"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(["scripts/bench_scale.py", *argv]),
            "machine": f"{cpu}, {os.cpu_count()} cores, torch CPU capability "
                       f"{torch.backends.cpu.get_cpu_capability()}"
                       + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""),
            "torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "peft": peft_v, "loadavg_before": _loadavg()}


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def bf16_slowdown() -> float:
    """Seconds of a bf16 matmul over an fp32 one on this CPU (no AVX512-BF16/AMX: often 50-100x)."""
    import torch

    a = torch.randn(512, 512)
    times = {}
    for dt in (torch.float32, torch.bfloat16):
        x = a.to(dt)
        x @ x
        t0 = time.perf_counter()
        for _ in range(3):
            x @ x
        times[dt] = time.perf_counter() - t0
    return times[torch.bfloat16] / times[torch.float32]
