"""How many CPU threads torch may use: `--threads N|auto` of every command.

No fixed number is right. On a 2-core machine whose other core is busy, two OpenMP threads made
the embedded-world `generate` 12-17x slower than one (every parallel region waits for the thread
that shares its core with the other job, while the waiting thread spins); on an idle machine two
are ~1.3x faster than one. So `auto` (the default) does both of:

* threads = the cores that are idle now: per-CPU idle time over ~0.15 s of /proc/stat, summed over
  the CPUs this process may run on (sched_getaffinity), a core counting when it is >= 75% idle;
  capped by the affinity count and a cgroup CPU quota; at least 1. Without /proc/stat (macOS,
  Windows): cpu_count - 1-minute load average. Any failure: 1 (slow by ~1.3x at worst, never 10x).
* OpenMP threads that wait sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE, KMP_BLOCKTIME=0 for
  Intel's runtime), so load that arrives after the measurement does not turn 2 threads into a 4x
  slowdown. This only works when set before the OpenMP runtime loads, i.e. before `import torch`
  (libgomp reads it once); explicit counts get it too. scripts/bench_threads.py measured, 30
  steps on a shared 2-core machine: 2 spinning threads 97-299 s, 2 passive threads 31-70 s,
  1 thread 47-64 s, auto (chose 1) 27-62 s.

Precedence (the first that is set wins): an explicit `spec` (the `--threads` flag), then
$REWARDSDS_THREADS (N or auto), then a user's $OMP_NUM_THREADS, then $MKL_NUM_THREADS, then the
measurement. A wait policy the user exported (OMP_WAIT_POLICY, GOMP_SPINCOUNT, KMP_BLOCKTIME) is
left alone. The count chosen goes into OMP_NUM_THREADS/MKL_NUM_THREADS (read when torch loads) and
into torch.set_num_threads if torch is already imported; RAYON_NUM_THREADS (Rust tokenizers) gets
it too unless the user set it. Child processes inherit these; $REWARDSDS_THREADS_CHOSEN marks a
count this module chose (not the user's), so a child running `auto` measures again.
"""

from __future__ import annotations

import math
import os
import sys
import time

ENV = "REWARDSDS_THREADS"
_MARK = "REWARDSDS_THREADS_CHOSEN"
_POLICY_MARK = "REWARDSDS_WAIT_POLICY"
MAX_THREADS = 1024
IDLE_FRACTION = 0.75  # a core counts as idle when it was idle at least this fraction of the sample
SAMPLE_S = 0.15

_measured: tuple[int, int, float | None] | None = None  # (pid, threads, idle) of this process's measurement
last_choice: dict = {}
"""How the last `configure_threads` call decided: threads, source, idle (measured idle cores, when
measured), wait_policy. For config.json / summaries."""


def parse_threads(value: int | str | None) -> int | None:
    """`--threads` value -> a count, or None for auto (None, 0, '', 'auto', '0').

    Raises ValueError (one sentence) for anything else than an integer in [1, 1024]."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"--threads must be 'auto' or an integer from 1 to {MAX_THREADS}, got {value!r}")
    if isinstance(value, str):
        s = value.strip().lower()
        if s in ("", "auto", "0"):
            return None
        try:
            value = int(s)
        except ValueError:
            raise ValueError(f"--threads must be 'auto' or an integer from 1 to {MAX_THREADS}, "
                             f"got {value!r}") from None
    if not isinstance(value, int):
        raise ValueError(f"--threads must be 'auto' or an integer from 1 to {MAX_THREADS}, got {value!r}")
    if value == 0:
        return None
    if not 1 <= value <= MAX_THREADS:
        raise ValueError(f"--threads must be 'auto' or an integer from 1 to {MAX_THREADS}, got {value}")
    return value


def threads_from_argv(args: list[str]) -> str | None:
    """The raw value of `--threads X` / `--threads=X` in a command line (left in place), or None.

    The CLI needs it before importing the command modules (they import torch)."""
    for i, a in enumerate(args):
        if a == "--":
            break
        if a == "--threads" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return None


# ------------------------------------------------------------------ measuring idle cores

def parse_proc_stat(text: str) -> dict[int, tuple[int, int]]:
    """/proc/stat text -> {cpu index: (idle ticks, total ticks)} from its `cpuN` lines.

    idle = idle + iowait; total = user..steal (guest time is already counted in user)."""
    out: dict[int, tuple[int, int]] = {}
    for line in text.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        parts = line.split()
        try:
            cpu = int(parts[0][3:])
            ticks = [int(x) for x in parts[1:9]]
        except (ValueError, IndexError):
            continue
        ticks += [0] * (8 - len(ticks))
        out[cpu] = (ticks[3] + ticks[4], sum(ticks))
    return out


def idle_fractions(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]],
                   cpus: set[int] | None = None) -> dict[int, float]:
    """Per-CPU idle fraction between two parse_proc_stat snapshots (CPUs in both, and in `cpus`).

    A CPU whose counters did not move (too short a sample, or offline) counts as idle."""
    fr = {}
    for cpu, (idle1, total1) in after.items():
        if cpu not in before or (cpus is not None and cpu not in cpus):
            continue
        idle0, total0 = before[cpu]
        dt = total1 - total0
        fr[cpu] = 1.0 if dt <= 0 else min(1.0, max(0.0, (idle1 - idle0) / dt))
    return fr


def count_idle(fractions: dict[int, float], threshold: float = IDLE_FRACTION) -> int:
    """Whole idle cores in a set of idle fractions: floor(sum + 1 - threshold).

    Two half-busy cores make one idle core; a core busy more than 25% of the time is not counted.
    Conservative on purpose: one thread too few costs ~1.3x, one too many up to ~15x."""
    return int(math.floor(sum(fractions.values()) + (1.0 - threshold) + 1e-9))


def _affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _cgroup_cpus() -> float | None:
    """CPUs allowed by a cgroup v2/v1 quota, or None when unlimited/unknown."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max" and int(period) > 0:
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period = int(f.read())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def _read_proc_stat() -> dict[int, tuple[int, int]]:
    with open("/proc/stat") as f:
        return parse_proc_stat(f.read())


def allowed_cpus(aff: set[int] | None = None) -> int:
    """CPUs this process may use: the affinity mask, capped by a cgroup quota (rounded up)."""
    aff = _affinity() if aff is None else aff
    allowed = len(aff) if aff else (os.cpu_count() or 1)
    quota = _cgroup_cpus()
    if quota is not None:
        allowed = min(allowed, max(1, math.ceil(quota - 1e-9)))
    return allowed


def measure_idle_cores(sample_s: float = SAMPLE_S) -> tuple[int, float | None]:
    """(threads to use, measured idle cores or None): idle cores now, clamped to [1, allowed]."""
    aff = _affinity()
    allowed = allowed_cpus(aff)
    idle: float | None
    try:
        before = _read_proc_stat()
        time.sleep(sample_s)
        fr = idle_fractions(before, _read_proc_stat(), aff)
        if not fr:
            raise OSError("no cpuN lines in /proc/stat")
        idle = sum(fr.values())
        n = count_idle(fr)
    except OSError:
        try:
            load = os.getloadavg()[0]
            idle = max(0.0, (os.cpu_count() or 1) - load)
            n = int(math.floor(idle + (1.0 - IDLE_FRACTION)))
        except (AttributeError, OSError):
            return 1, None
    return max(1, min(n, allowed)), idle


# ------------------------------------------------------------------ applying

def _env_count(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return parse_threads(raw.split(",")[0])  # OMP_NUM_THREADS may be a nested list "4,2"
    except ValueError:
        return None


def _openmp_loaded() -> bool:
    if "torch" in sys.modules:
        return True
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return False
    return any(lib in maps for lib in ("libgomp", "libiomp", "libomp"))


def _wait_policy() -> str:
    """Ask OpenMP waiters to sleep instead of spin, unless the user chose a policy. Before torch."""
    user = [k for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME") if k in os.environ]
    if set(user) == {"OMP_WAIT_POLICY", "KMP_BLOCKTIME"} and os.environ.get(_POLICY_MARK) == "passive" \
            and (os.environ["OMP_WAIT_POLICY"], os.environ["KMP_BLOCKTIME"]) == ("PASSIVE", "0"):
        return "passive"  # set by this module (here or in a parent process)
    if user:
        return "user: " + ", ".join(f"{k}={os.environ[k]}" for k in user)
    if _openmp_loaded():
        return "default (OpenMP already loaded)"
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ["KMP_BLOCKTIME"] = "0"
    os.environ[_POLICY_MARK] = "passive"
    return "passive"


def configure_threads(spec: int | str | None = None) -> int:
    """Pick and apply torch's CPU thread count; returns it. spec: N, or None/0/'auto' for auto.

    Call it first thing in a process, before `import torch` (the wait policy and the env-based
    count only reach OpenMP then; the count also works later through torch.set_num_threads).
    Calling it again in the same process is cheap: auto measures once per process and reuses it.
    Raises ValueError only for an invalid explicit spec; everything else falls back to 1."""
    n = parse_threads(spec)
    source = "flag"
    idle = None
    try:
        ours = os.environ.get(_MARK)
        if n is None:
            n, source = _env_count(ENV), ENV
        if n is None and os.environ.get("OMP_NUM_THREADS", "").strip() != (ours or "\0"):
            n, source = _env_count("OMP_NUM_THREADS"), "OMP_NUM_THREADS"
        if n is None and os.environ.get("MKL_NUM_THREADS", "").strip() != (ours or "\0"):
            n, source = _env_count("MKL_NUM_THREADS"), "MKL_NUM_THREADS"
        if n is None:
            global _measured
            if _measured and _measured[0] == os.getpid() and os.environ.get(_MARK) == str(_measured[1]):
                n, idle = _measured[1], _measured[2]  # a second call in one process: same answer
            else:
                n, idle = measure_idle_cores()
                _measured = (os.getpid(), n, idle)
            source = "auto"
    except Exception:  # noqa: BLE001 - choosing a thread count must never stop a command
        n, source = 1, "fallback"
    policy = "unchanged"
    try:
        policy = _wait_policy()
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
        if source in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.pop(_MARK, None)  # the user's count: later calls and children keep it
        else:
            os.environ[_MARK] = str(n)
        os.environ.setdefault("RAYON_NUM_THREADS", str(n))
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(n)
    except Exception:  # noqa: BLE001
        pass
    last_choice.clear()
    last_choice.update(threads=n, source=source, idle=None if idle is None else round(idle, 2),
                       wait_policy=policy)
    return n
