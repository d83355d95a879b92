"""The 3D table (the paper's Table 2 on the 3D world): SDS vs RewardSDS, read by the exact judge3d.

    python benchmarks/table3d.py [--prompts benchmarks/world3d_prompts.txt] [--seeds 0 1]
        [--methods sds reward-sds] [--prior world3d] [--representation gaussians|field] [--jobs N] [--device auto]
        [--reward world3d-clip@FOLDER] [--out out/table3d]

For every prompt, seed and method, `rewardsds gen3d PROMPT --prior world3d --method M --seed S` runs with
the 3D world's defaults (the table measures the defaults: Gaussians, 133 steps; --representation field gives
the field at its 400 steps; --steps overrides the step count, for a smoke test or a variant measured as
such) and
its summary.json's ``judge3d`` verdict is read: the share of facts right (colours, shapes, relation,
count), every fact right, and duplicated objects (the 3D face of the Janus problem). Printed and written
to OUT/table.md: per method the means with 95% bootstrap CIs over prompts, by category (one object,
two objects), seconds per asset, and the paired difference RewardSDS - SDS per (prompt, seed).

--jobs N runs N worker processes (one torch thread each), each taking every N-th (prompt, seed); they share the GPU
when --device is cuda. Finished runs (a summary.json in their folder) are reused, so an interrupted
table is finished by running the same command again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_PROMPTS = ROOT / "benchmarks" / "world3d_prompts.txt"
CATEGORIES = {"all": lambda r: True, "one object": lambda r: r["objects"] == 1,
              "two objects": lambda r: r["objects"] == 2}
"""the table's row groups: category -> does a row (one run) belong to it"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=Path, default=DEFAULT_PROMPTS, help="one 3D world caption per line")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--methods", nargs="+", default=["sds", "reward-sds"])
    ap.add_argument("--prior", default="world3d", help="prior alias or folder (a 3D world prior)")
    ap.add_argument("--representation", choices=["field", "gaussians"], default=None,
                    help="what gen3d optimises (default: the prior's, Gaussians on the 3D world; use a separate "
                         "--out per representation)")
    ap.add_argument("--steps", type=int, default=None,
                    help="override the family's step count (smoke tests; variants measured as such)")
    ap.add_argument("--reward-steps", type=float, default=None,
                    help="override gen3d's K, the steps that use rewards (a fraction in (0, 1] or a count); a "
                         "variant measured as such")
    ap.add_argument("--reward", default=None,
                    help="RewardSDS's reward spec, e.g. world3d-clip@FOLDER for a retrained 3D CLIP (default: the "
                         "prior's, world3d-clip); a variant measured as such: SDS runs never read it")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (each one torch thread)")
    ap.add_argument("--shard", default=None, help=argparse.SUPPRESS)  # K/N: a worker's share of the runs
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "table3d")
    ap.add_argument("--report-only", action="store_true", help="summarise the finished runs, run nothing")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs must be at least 1, got {args.jobs}")
    if not args.prompts.is_file():
        ap.error(f"no prompt file {str(args.prompts)!r}")
    if args.steps is not None and args.steps < 1:
        ap.error(f"--steps must be at least 1, got {args.steps}")
    if args.reward_steps is not None and not 0 < args.reward_steps < float("inf"):
        ap.error(f"--reward-steps must be a finite number above 0, got {args.reward_steps}")
    if args.reward is not None:
        from rewardsds.rewards.factory import spec_problem

        problem = spec_problem(args.reward)
        if problem:
            ap.error(f"--reward: {problem}")
    if any(s < 0 for s in args.seeds):
        ap.error(f"--seeds must be >= 0, got {args.seeds}")
    from rewardsds.world3d.scenes import parse_caption

    for line in args.prompts.read_text().splitlines():
        try:
            if line.strip():
                parse_caption(line.strip())
        except ValueError as e:
            ap.error(str(e))  # judge3d reads 3D world captions only
    return args


def runs(args: argparse.Namespace) -> list[tuple[str, int, str, Path]]:
    """(prompt, seed, method, folder) in table order: both methods of a (prompt, seed) next to each other,
    so that a table stopped early still holds pairs."""
    prompts = [p.strip() for p in args.prompts.read_text().splitlines() if p.strip()]
    return [(p, s, m, args.out / m / f"{p.replace(' ', '_')}_s{s}") for s in args.seeds for p in prompts
            for m in args.methods]


def share(args: argparse.Namespace, k: int, n: int) -> list[tuple[str, int, str, Path]]:
    """Worker k's runs of n: every n-th (prompt, seed) from the k-th, with all its methods."""
    per_pair = len(args.methods)
    return [r for i, r in enumerate(runs(args)) if (i // per_pair) % n == k]


def work(args: argparse.Namespace, k: int, n: int) -> None:
    """Run this worker's share, loading the prior and reward once: every n-th (prompt, seed) from the k-th,
    all its methods in a row, so that every worker does the same mix of cheap and costly methods and a
    table stopped early holds pairs (sharding single runs gave each of 2 workers one method)."""
    import torch

    from rewardsds.app.models import ModelCache
    from rewardsds.config3d import Gen3DConfig
    from rewardsds.gen3d import run_gen3d

    torch.set_num_threads(1)
    models = ModelCache()
    for prompt, seed, method, out in share(args, k, n):
        if (out / "summary.json").exists():
            continue
        cfg = Gen3DConfig(prompt=prompt, prior=args.prior, method=method, seed=seed, out=out, device=args.device,
                          threads=1, progress=False, overwrite=out.exists(), representation=args.representation,
                          **({"steps": args.steps} if args.steps else {}),
                          **({"reward_steps": args.reward_steps} if args.reward_steps else {}),
                          **({"reward": args.reward} if args.reward else {}))
        s = run_gen3d(cfg, models=models)
        verdict = s.get("judge3d") or {}
        print(f"[{k}/{n}] {method:10s} s{seed} {prompt:48s} judge3d {verdict.get('accuracy')} "
              f"({s['seconds']} s)", flush=True)


def launch(args: argparse.Namespace, argv: list[str]) -> None:
    """--jobs N: N copies of this script, each with --shard k/N; fails if any of them fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, __file__, *argv, "--shard", f"{k}/{args.jobs}"], env=env)
             for k in range(args.jobs)]
    codes = [p.wait() for p in procs]
    if any(codes):
        sys.exit(f"{sum(c != 0 for c in codes)} of {args.jobs} workers failed (exit codes {codes}); rerun the "
                 "same command to finish the missing runs")


def rows(args: argparse.Namespace) -> list[dict]:
    from rewardsds.world3d.scenes import parse_caption

    out = []
    for prompt, seed, method, folder in runs(args):
        path = folder / "summary.json"
        if not path.exists():
            continue
        s = json.loads(path.read_text())
        v = s.get("judge3d")
        if v is None:
            continue
        out.append({"prompt": prompt, "seed": seed, "method": method, "accuracy": v["accuracy"],
                    "all_correct": float(v["all_correct"]), "duplicated": float(bool(v["duplicated"])),
                    "seconds": s["seconds"], "objects": len(parse_caption(prompt).objects)})
    return out


def summarise(rows_: list[dict], methods: list[str]) -> list[str]:
    """Markdown: per method and category the means with prompt-clustered CIs; RewardSDS - SDS paired."""
    import numpy as np

    from rewardsds.eval.aggregate import bootstrap_mean, paired_difference

    def est(vals, clusters, scale=100.0):
        e = bootstrap_mean(vals, clusters=clusters)
        return f"{scale * e.mean:.1f} [{scale * e.lo:.1f}, {scale * e.hi:.1f}]"

    lines = ["| method | category | n | judge3d facts % | every fact right % | duplicated % | s/asset |",
             "|---|---|---|---|---|---|---|"]
    for m in methods:
        for cat, keep in CATEGORIES.items():
            rs = [r for r in rows_ if r["method"] == m and keep(r)]
            if not rs:
                continue
            cl = [r["prompt"] for r in rs]
            lines.append(f"| {m} | {cat} | {len(rs)} | {est([r['accuracy'] for r in rs], cl)} | "
                         f"{est([r['all_correct'] for r in rs], cl)} | {est([r['duplicated'] for r in rs], cl)} | "
                         f"{np.mean([r['seconds'] for r in rs]):.1f} |")
    base = methods[0]
    for m in methods[1:]:
        lines += ["", f"Paired {m} - {base} (same prompt and seed; 95% CI over prompts):", ""]
        for cat, keep in CATEGORIES.items():
            for key, label in (("accuracy", "judge3d facts"), ("all_correct", "every fact right"),
                               ("duplicated", "duplicated")):
                a = {(r["prompt"], r["seed"]): r[key] for r in rows_ if r["method"] == m and keep(r)}
                z = {(r["prompt"], r["seed"]): r[key] for r in rows_ if r["method"] == base and keep(r)}
                d = paired_difference(a, z)
                if d is not None:
                    lines.append(f"- {cat}, {label}: {100 * d.mean:+.1f} [{100 * d.lo:+.1f}, {100 * d.hi:+.1f}] "
                                 f"points (n = {d.n})")
    return lines


def main(argv: list[str] | None = None) -> None:
    from rewardsds.defaults import family_defaults

    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.shard is not None:
        k, n = (int(x) for x in args.shard.split("/"))
        work(args, k, n)
        return
    t0 = time.time()
    if not args.report_only:
        if args.jobs == 1:
            work(args, 0, 1)
        else:
            launch(args, argv)
    rs = rows(args)
    if not rs:
        sys.exit(f"no finished runs under {args.out}")
    lines = summarise(rs, args.methods)
    total = len(runs(args))
    rep = args.representation or family_defaults(args.prior).representation_3d
    head = [f"# 3D table ({args.prior}, {rep}): {len(rs)} of {total} runs finished "
            f"({args.prompts.name}, seeds "
            f"{' '.join(map(str, args.seeds))}; {time.time() - t0:.0f} s this call)", ""]
    text = "\n".join(head + lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text)
    (args.out / "rows.json").write_text(json.dumps(rs, indent=1) + "\n")


if __name__ == "__main__":
    main()
