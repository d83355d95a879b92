"""A sweep driver killed with SIGKILL takes its local pool workers with it (no orphans holding a prior
in memory forever). Real processes, found through /proc; everything started here is killed in
`finally`, by pid, whatever happens."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

HANG = '''
import os, time
from pathlib import Path


def hang(task):
    """A run that never ends; says that it started (so its worker ran the pool's initializer)."""
    started = Path(task["run_dir"]).parent.parent / "started"
    started.mkdir(exist_ok=True)
    (started / str(os.getpid())).write_text("")
    time.sleep(600)
    return {"ok": False, "error": "not reached"}
'''

DRIVER = '''
import sys
sys.path.insert(0, {helpers!r})
import orphan_helpers
import rewardsds.sweep.runner as runner
from rewardsds.cli import main

real = runner.run_sweep
runner.run_sweep = lambda cfg: real(cfg, orphan_helpers.hang)
sys.exit(main({argv!r}))
'''


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time in clock ticks) of a process, None when it does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = data.rsplit(")", 1)[1].split()  # the command name in (...) may contain spaces
    return rest[0], int(rest[1]), int(rest[19])


def _descendants(root: int) -> dict[int, int]:
    """pid -> start time of every live descendant of root."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None and st[0] not in "ZX":
            children.setdefault(st[1], []).append((int(entry.name), st[2]))
    out, todo = {}, [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            out[pid] = start
            todo.append(pid)
    return out


def _alive(procs: dict[int, int]) -> dict[int, str]:
    """Those of procs (pid -> start time) still running (zombies are dead: they hold no memory)."""
    out = {}
    for pid, start in procs.items():
        st = _stat(pid)
        if st is not None and st[0] not in "ZX" and st[2] == start:
            try:
                out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
            except OSError:
                continue
    return out


def _wait_until(cond, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as f:
        return subprocess.Popen([sys.executable, *args], stdout=f, stderr=subprocess.STDOUT, env=env,
                                cwd=log.parent)


def _kill_all(driver: subprocess.Popen, procs: dict[int, int]) -> None:
    if driver.poll() is None:
        procs.update(_descendants(driver.pid))
        driver.kill()
    driver.wait(timeout=10)
    for pid in _alive(procs):
        os.kill(pid, signal.SIGKILL)


def test_sigkilled_driver_leaves_no_workers(tmp_path):
    (tmp_path / "orphan_helpers.py").write_text(HANG)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\na blue square\n")
    out = tmp_path / "sweep"
    argv = ["sweep", str(prompts), "--methods", "sds", "--prior", "unused", "--steps", "2", "--workers", "2",
            "--out", str(out), "--no-progress"]
    driver = _start(["-c", DRIVER.format(helpers=str(tmp_path), argv=argv)], tmp_path / "driver.log")
    procs: dict[int, int] = {}  # pid -> start time of everything the driver started
    try:
        started = out / "started"

        def both_running() -> bool:
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()
            return started.is_dir() and len(list(started.iterdir())) == 2

        assert _wait_until(both_running, 25), "the workers did not start in time"
        procs.update(_descendants(driver.pid))
        workers = {int(p.name) for p in started.iterdir()}
        assert workers <= set(procs), (workers, procs)  # the runs are in the driver's own children

        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=10)
        assert _wait_until(lambda: not _alive(procs), 5), f"left behind: {_alive(procs)}"
    finally:
        _kill_all(driver, procs)


def test_parent_watch_without_prctl(tmp_path):
    """The portable fallback alone (as on macOS): a watcher thread sees the parent pid change."""
    child = textwrap.dedent("""
        import sys, time
        import rewardsds.sweep.backends as backends
        sys.platform = "portable"  # skip prctl: only the polling thread is left
        backends._die_with_parent(int(sys.argv[1]))
        print("ready", flush=True)
        time.sleep(60)
    """)
    parent = textwrap.dedent(f"""
        import os, subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {child!r}, str(os.getpid())])
        time.sleep(60)
    """)
    driver = _start(["-c", parent], tmp_path / "parent.log")
    procs: dict[int, int] = {}
    try:
        assert _wait_until(lambda: "ready" in (tmp_path / "parent.log").read_text(), 20)
        procs.update(_descendants(driver.pid))
        assert len(procs) == 1
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=10)
        assert _wait_until(lambda: not _alive(procs), 5), f"left behind: {_alive(procs)}"
    finally:
        _kill_all(driver, procs)
