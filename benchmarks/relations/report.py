"""The report of the relations diagnosis: text tables, and the distillation runs with their sections (2-4)
of the report and the grid of final images."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from .runs import measure_run, oracle_reward
from .stats import candidate_stats, final_stats


def fmt(x) -> str:
    if isinstance(x, tuple):
        return f"{x[0]:.3f} [{x[1]:.3f}, {x[2]:.3f}]"
    if isinstance(x, float):
        return "n/a" if not np.isfinite(x) else f"{x:.3f}"
    return str(x)


def table(rows: dict[str, dict], cols: list[str]) -> str:
    keys = list(dict.fromkeys(k for c in cols if c in rows for k in rows[c]))
    w = max(len(k) for k in keys) + 2
    cells = {c: [fmt(rows[c].get(k, "")) for k in keys] for c in cols}
    cw = {c: max(len(c), *(len(x) for x in cells[c])) + 2 for c in cols}
    lines = [" " * w + "".join(f"{c:>{cw[c]}s}" for c in cols)]
    for i, k in enumerate(keys):
        lines.append(f"{k:<{w}s}" + "".join(f"{cells[c][i]:>{cw[c]}s}" for c in cols))
    return "\n".join(lines)


def report_runs(prior, clip, prompts, methods, runs, pri, args, t_start, say):
    import torch

    from rewardsds import media

    oracle = oracle_reward(clip) if args.oracle else None
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for p in prompts:
                for m in methods:
                    method, rm = ("reward-sds", oracle) if m == "oracle" else (m, clip)
                    r = measure_run(prior, clip, rm, p, method, seed, args.steps, Path(tmp))
                    runs[m].append(r)
                    print(f"  [{time.time() - t_start:6.0f} s] {m:10s} seed {seed} {p!r}: judge "
                          f"{r['final']['accuracy']:.2f} layout {r['final']['layout']:8s} {r['final']['class']} "
                          f"({r['seconds']} s)", flush=True)

    say("\n== 2/3. candidates and reward on the reward steps (pooled over runs; rows by t, then by step)")
    cand = {m: candidate_stats(rs) for m, rs in runs.items() if m != "sds"}
    for m, cs in cand.items():
        say(f"-- {m}")
        say(table(cs, list(cs)))

    say("\n== 4. final images (mean [95% bootstrap CI over prompts] where shown)")
    fin = {m: final_stats(rs) for m, rs in runs.items()}
    flat = {}
    for m, f in fin.items():
        row = {k: v for k, v in f.items() if not isinstance(v, dict)}
        row.update({f"class: {c}": v for c, v in f["classes"].items()})
        row.update({f"layout {k}": v for k, v in f["layout"].items()})
        row.update({f"layout right at step {s}": v for s, v in f["layout right at step"].items()})
        flat[m] = row
    say(table(flat, list(flat)))
    for k in pri:
        say(f"prior {k} failure classes: " + ", ".join(f"{c} {fmt(v)}" for c, v in pri[k]["classes"].items()))

    say("\nper prompt (final judge accuracy / layout):")
    for i, p in enumerate(prompts):
        cells = []
        for m in methods:
            rs = [r for r in runs[m] if r["prompt"] == p]
            cells.append(f"{m} " + " ".join(f"{r['final']['accuracy']:.2f}/{r['final']['layout'][:3]}" for r in rs))
        head = f"  {p:48s}"
        if pri:
            pp = pri[next(iter(pri))]["per_prompt"][i]
            head += f" prior acc {pp['accuracy']:.2f} rel {pp['relation']:.2f}"
        say(head + " | " + " | ".join(cells))
    imgs = torch.stack([r["final_image"] for m in methods for r in runs[m]])
    media.save_png(args.out / f"final_images{args.tag}.png", media.grid(media.to_uint8(imgs, 4), cols=len(prompts)))
    say(f"(final_images{args.tag}.png: rows = {', '.join(methods)}{' per seed' if len(args.seeds) > 1 else ''}; "
        f"columns = prompts)")
    return cand, fin
