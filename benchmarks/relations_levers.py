"""Which lever lifts two-object prompts? One table over the run folders of any number of world sweeps.

    python benchmarks/relations_levers.py OUT [OUT ...] [--baseline "sds cfg=20 init=colour"]
        [--md FILE]

Every finished run (runs/*/summary.json with its config.json) of the given sweep folders becomes a unit
(prompt, seed) of its variant, labelled by what the levers set: method, guidance scale, t_max and the
start (the backdrop colour, or the best of N prior samples: `--init-samples`). For each variant: the
judge's facts right (%), every fact right (%), and for variants that start from prior samples the same two
figures on the start alone (`init.png`, the reward's pick or the first sample), so one sees what the
distillation adds to or takes from its start; then the paired difference of the judge against the
baseline variant over the (prompt, seed) units both have, with a 95% bootstrap CI over prompts
(`rewardsds.eval.aggregate`). Seconds per image are as the runs logged them (machine load included).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewardsds.eval.aggregate import bootstrap_mean, paired_difference  # noqa: E402
from rewardsds.world.judge import judge  # noqa: E402

OTHER_DEFAULTS = {"reward": "world-clip", "weighting": "top-bottom", "n_noises": 4, "steps": 150}
"""settings named in a label when a run differs from them (steps: the benchmark tables' count)"""


def label(conf: dict) -> str:
    picked = "best" if conf["method"].startswith("reward-") else "first"  # a method without a reward takes the first
    start = f"init={picked}-of-{conf['init_samples']}" if conf.get("init_samples") else "init=colour"
    t_max = f" t_max={conf['t_max']:g}" if conf.get("t_max", 0.98) != 0.98 else ""
    # what else a shared run folder may hold beside the levers (Table 1's cross-evaluation and controls)
    rest = [f"{k}={conf[k]}" for k, default in OTHER_DEFAULTS.items() if conf.get(k, default) != default]
    return " ".join([f"{conf['method']} cfg={conf['cfg']:g}{t_max} {start}", *rest])


def start_verdict(run: Path, prompt: str) -> tuple[float, bool] | None:
    """The judge on the run's start: init_raw.png when written, else init.png (8x nearest upscale, 2 px pad)."""
    from PIL import Image

    raw, big = run / "init_raw.png", run / "init.png"
    if raw.exists():
        px = np.asarray(Image.open(raw).convert("RGB"))
    elif big.exists():
        im = np.asarray(Image.open(big).convert("RGB"))
        side = (im.shape[0] - 4) // 8
        px = im[2:2 + 8 * side, 2:2 + 8 * side][4::8, 4::8]
    else:
        return None
    v = judge(px.transpose(2, 0, 1).astype(np.float32) / 255, prompt)
    return v.accuracy, all(v.facts.values())


def collect(folders: list[Path]) -> dict[str, dict]:
    variants: dict[str, dict] = defaultdict(lambda: {"judge": {}, "all": {}, "start": {}, "start_all": {},
                                                      "seconds": []})
    seen: dict[tuple, Path] = {}
    for folder in folders:
        for summary in sorted(folder.glob("runs/*/summary.json")):
            run = summary.parent.resolve()
            if run in seen.values():  # sweeps that share one run folder
                continue
            s = json.loads(summary.read_text())
            conf = json.loads((summary.parent / "config.json").read_text())
            if not s.get("judge"):
                continue
            prompt = s["prompts"][0]
            v, key = variants[label(conf)], (prompt, conf["seed"])
            if (label(conf), *key) in seen:
                raise ValueError(f"two runs read as {label(conf)!r} for {key}: {seen[(label(conf), *key)]} and "
                                 f"{run}; the label misses what tells them apart")
            seen[(label(conf), *key)] = run
            v["judge"][key] = 100 * s["judge"][0]["accuracy"]
            v["all"][key] = 100 * all(s["judge"][0]["facts"].values())
            v["seconds"].append(s["seconds"])
            if conf.get("init_samples"):
                got = start_verdict(summary.parent, prompt)
                if got is not None:
                    v["start"][key], v["start_all"][key] = 100 * got[0], 100 * got[1]
    return variants


def ci(values: dict) -> str:
    if not values:
        return "-"
    e = bootstrap_mean(list(values.values()), clusters=[k[0] for k in values])
    return f"{e.mean:.1f} [{e.lo:.1f}, {e.hi:.1f}]"


def table(variants: dict[str, dict], baseline: str) -> str:
    base = variants.get(baseline)
    head = ("variant", "n", "judge", "every fact right", "start: judge", "start: every fact",
            f"Δ judge vs {baseline}", "s / image")
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name in sorted(variants):
        v = variants[name]
        d = paired_difference(v["judge"], base["judge"]) if base is not None and name != baseline else None
        delta = "-" if d is None else f"{d.mean:+.1f} [{d.lo:+.1f}, {d.hi:+.1f}] (n={d.n})"
        lines.append(f"| {name} | {len(v['judge'])} | {ci(v['judge'])} | {ci(v['all'])} | {ci(v['start'])} | "
                     f"{ci(v['start_all'])} | {delta} | {np.median(v['seconds']):.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, help="sweep folders (each with runs/)")
    ap.add_argument("--baseline", default="sds cfg=20 init=colour")
    ap.add_argument("--md", type=Path, help="also write the table here")
    args = ap.parse_args(argv)
    missing = [str(f) for f in args.folders if not (f / "runs").is_dir()]
    if missing:
        print(f"relations_levers: not sweep folders (no runs/): {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        variants = collect(args.folders)
    except ValueError as e:
        print(f"relations_levers: {e}", file=sys.stderr)
        return 2
    text = table(variants, args.baseline)
    print(text, end="")
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
