"""Phase isolation: the build and each measuring phase run in a child process (scripts/bench_scale.py
re-invoked with ``--phase NAME``) unless --no-isolate, so the weights one phase loads never count in
another's peak; a child's result comes back as JSON."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from .build import build_models
from .common import GIB
from .measure import run_child
from .phases import PHASES

SCRIPT = Path(__file__).resolve().parents[1] / "bench_scale.py"  # the entry point the children run


def run_phase(name: str, args, p, argv: list[str]) -> dict:
    """A phase in this process, or in a child (`--phase NAME`) whose result comes back as JSON."""
    if not args.isolate or name == "generate":
        return PHASES[name](args, p)
    with tempfile.TemporaryDirectory(prefix="bench_scale-") as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(SCRIPT), *argv, "--phase", name, "--phase-out", str(result),
               "--folder", str(args.folder)]
        rc, usage, _, _ = run_child(cmd)
        if rc or not result.exists():
            return {"error": f"phase {name} failed (exit {rc})", "child": usage}
        out = json.loads(result.read_text())
        out["child"] = usage
        return out


def build_phase(args, argv: list[str]) -> dict:
    root = Path(args.folder)
    if (root / "built.json").exists() and json.loads((root / "built.json").read_text()).get("tiny") == args.tiny:
        return {"build_s": 0.0, "reused": True}
    t0 = time.perf_counter()
    if args.isolate:
        rc, _, _, _ = run_child([sys.executable, str(SCRIPT), *argv, "--phase", "build", "--folder", str(root)])
        if rc:
            raise SystemExit(f"bench_scale: building the models failed (exit {rc})")
    else:
        build_models(root, args.tiny)
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    return {"build_s": round(time.perf_counter() - t0, 1), "reused": False, "disk_gib": round(size / GIB, 2)}
