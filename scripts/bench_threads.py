"""Benchmark torch thread settings of the main job on an idle and on a busy machine.

Runs `rewardsds generate PROMPT --steps S --out TMP --no-progress` as a subprocess per
(condition, setting, repeat) and prints wall seconds (min / median) per (condition, setting).

    .venv/bin/python scripts/bench_threads.py --steps 30 --repeats 2 --settings 1 2 auto

settings: N      OMP_NUM_THREADS=N, torch's default wait (GOMP_SPINCOUNT=300000 = libgomp's default
                 when OMP_WAIT_POLICY is unset; explicit, because the CLI otherwise makes it passive)
          Np     OMP_NUM_THREADS=N and OMP_WAIT_POLICY=PASSIVE
          auto   rewardsds.threads.configure_threads(None) (idle cores + passive wait): the CLI's
                 default (`--auto-via cli`), or through a python -c wrapper (`--auto-via wrapper`)
conditions: idle  nothing started by the benchmark (other users' load is printed: /proc/loadavg)
            busy  a `while True: pass` process burns one core (started before, killed after)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rewardsds.threads import allowed_cpus, measure_idle_cores

PROMPT = "a red circle to the left of a blue square"
_CLEAN = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME",
          "REWARDSDS_THREADS", "REWARDSDS_THREADS_CHOSEN", "RAYON_NUM_THREADS")
_WRAPPER = ("import sys\n"
            "from rewardsds.threads import configure_threads, last_choice\n"
            "configure_threads(None)\n"
            "print('rewardsds-threads:', last_choice, file=sys.stderr, flush=True)\n"
            "from rewardsds.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")


def _load() -> str:
    """1-min load average and the idle cores measured over 0.15 s, just before a run."""
    try:
        avg = Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        avg = "?"
    idle = measure_idle_cores()[1]
    return f"loadavg {avg}, idle cores {'?' if idle is None else f'{idle:.2f}'}"


def _wait_idle(max_s: float) -> bool:
    """Before an 'idle' run on a shared machine: wait up to max_s for every core to be idle."""
    want = allowed_cpus()
    deadline = time.monotonic() + max_s
    while True:
        idle = measure_idle_cores(0.5)[1]
        if idle is None or idle >= want - 0.15:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(1.0)


def _command(setting: str, steps: int, out: Path, auto_via: str) -> tuple[list[str], dict]:
    env = {k: v for k, v in os.environ.items() if k not in _CLEAN}
    exe = shutil.which("rewardsds", path=str(Path(sys.executable).parent)) or "rewardsds"
    job = ["generate", PROMPT, "--steps", str(steps), "--out", str(out), "--no-progress"]
    if setting == "auto":
        if auto_via == "cli":  # the command's own default (--threads left out = auto)
            return [exe, *job], env
        return [sys.executable, "-c", _WRAPPER, *job], env
    m = re.fullmatch(r"(\d+)(p?)", setting)
    if not m:
        raise SystemExit(f"bench_threads: unknown setting {setting!r} (N, Np or auto)")
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = m.group(1)
    if m.group(2):
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    else:  # libgomp's spin for an unset OMP_WAIT_POLICY, made explicit: the CLI then leaves it alone
        env["GOMP_SPINCOUNT"] = "300000"
    return [exe, *job], env


def _start_burner(pin: int | None) -> subprocess.Popen:
    def preexec():
        if pin is not None:
            os.sched_setaffinity(0, {pin})
    env = {k: v for k, v in os.environ.items() if k not in _CLEAN}
    return subprocess.Popen([sys.executable, "-c", "while True: pass"], env=env, preexec_fn=preexec,
                            start_new_session=True)


def _run(setting: str, steps: int, tmp: Path, auto_via: str, timeout: float) -> tuple[float | None, str]:
    out = Path(tempfile.mkdtemp(dir=tmp, prefix=f"{setting}-"))
    cmd, env = _command(setting, steps, out, auto_via)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    note = ""
    m = re.search(r"rewardsds-threads: (.*)", p.stderr)
    if m:
        note = m.group(1)
    else:
        try:
            note = f"threads_used {json.loads((out / 'config.json').read_text())['threads_used']}"
        except (OSError, ValueError, KeyError, TypeError):
            pass
    shutil.rmtree(out, ignore_errors=True)
    if p.returncode != 0:
        print(p.stderr[-2000:], file=sys.stderr)
        return None, f"exit {p.returncode}"
    return wall, note


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--settings", nargs="+", default=["1", "2", "auto"])
    ap.add_argument("--conditions", nargs="+", default=["idle", "busy"], choices=["idle", "busy"])
    ap.add_argument("--pin-busy", type=int, default=None, metavar="CPU",
                    help="pin the busy process to this CPU (default: not pinned, like another user's job)")
    ap.add_argument("--auto-via", choices=["cli", "wrapper"], default="cli",
                    help="how 'auto' reaches the job: the CLI's default (no --threads), or a python -c "
                         "wrapper calling configure_threads(None) first (for a CLI without the option)")
    ap.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                    help="before each idle-condition run, wait up to S seconds for all cores to be idle, "
                         "else skip the run (shared machines)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed 1-step run (file cache)")
    a = ap.parse_args(argv)
    # `kill PID` must still stop the busy process and remove the temporary folder
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_threads-") as tmpdir:
        tmp = Path(tmpdir)
        if not a.no_warmup:
            _run("1", 1, tmp, a.auto_via, a.timeout)
        for cond in a.conditions:
            burner = _start_burner(a.pin_busy) if cond == "busy" else None
            try:
                if burner:
                    time.sleep(1.0)
                for rep in range(a.repeats):
                    for setting in a.settings:
                        if cond == "idle" and a.wait_idle > 0 and not _wait_idle(a.wait_idle):
                            print(f"idle rep {rep} {setting:>5s}: skipped, cores not idle within "
                                  f"{a.wait_idle:.0f}s ({_load()})", flush=True)
                            continue
                        load = _load()
                        try:
                            wall, note = _run(setting, a.steps, tmp, a.auto_via, a.timeout)
                        except subprocess.TimeoutExpired:
                            wall, note = None, f"timeout {a.timeout:.0f}s"
                        shown = f"{wall:7.1f}s" if wall is not None else "  failed"
                        print(f"{cond:4s} rep {rep} {setting:>5s}: {shown}  before: {load}  {note}",
                              flush=True)
                        if wall is not None:
                            results.setdefault((cond, setting), []).append(wall)
            finally:
                if burner:
                    os.killpg(burner.pid, signal.SIGKILL)
                    burner.wait()

    print(f"\n{a.steps} steps, {a.repeats} repeats, wall seconds (process start to exit)")
    print(f"{'condition':9s} {'setting':>7s} {'min':>7s} {'median':>7s}  runs")
    for cond in a.conditions:
        for setting in a.settings:
            w = results.get((cond, setting), [])
            if w:
                print(f"{cond:9s} {setting:>7s} {min(w):7.1f} {statistics.median(w):7.1f}  "
                      + " ".join(f"{x:.1f}" for x in w))
            else:
                print(f"{cond:9s} {setting:>7s} {'-':>7s} {'-':>7s}  none succeeded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
