"""Does RewardSDS help in 3D on the world, and do Gaussians match the field? Judge accuracy of random views.

    python scripts/bench_3d_judge.py [--prompts "a red circle" ...] [--representations field gaussians]
                                     [--methods sds reward-sds] [--seeds 0 1] [--steps 300] [--views 10]

For each world prompt, seed, representation and method, `rewardsds gen3d` distils a 3D asset with the
world defaults (4 views per step at 32 px, reward on the first half of the steps, both t bounds annealed);
then `--views` random orbit views of the finished field or Gaussian set (elevation 0-30 degrees, any
azimuth, seeded) are rendered on the world's backdrop at 32 px and graded by the exact 2D judge. Prints
per (representation, method) the mean view accuracy with a 95% bootstrap CI over prompts, seconds per
asset, and paired differences: RewardSDS - SDS per representation, Gaussians - field per method. Runs
already in --out are reused (the script can be stopped and rerun).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

DEFAULT_PROMPTS = ("a red circle", "a blue square", "a yellow triangle", "a green circle", "a purple square")


def judge_views(run_dir: Path, prompt: str, views: int, seed: int) -> float:
    """Mean judge accuracy of `views` random orbit views of the run's field or Gaussians."""
    from rewardsds.export3d import render_views
    from rewardsds.gen3d import load_scene
    from rewardsds.render import SolidBackground
    from rewardsds.world.judge import judge
    from rewardsds.world.scenes import BACKGROUND as WORLD_BACKGROUND

    model, renderer = load_scene(run_dir)
    g = torch.Generator().manual_seed(seed)
    azimuths = (torch.rand(views, generator=g) * 360).tolist()
    elevations = (torch.rand(views, generator=g) * 30).tolist()
    bg = SolidBackground(WORLD_BACKGROUND)
    accs = []
    with torch.no_grad():
        for az, el in zip(azimuths, elevations):
            img = render_views(model, renderer, azimuths=(az,), resolution=32, elevation=el, background=bg)[0]
            accs.append(judge(img.astype(np.float32) / 255, prompt).accuracy)
    return float(np.mean(accs))


def summarise(rows: list[dict]) -> list[str]:
    """Per-variant means with CIs over prompts, and the paired differences the comparison is about."""
    from rewardsds.eval.aggregate import bootstrap_mean, paired_difference

    lines = []
    variants = sorted({(r["representation"], r["method"]) for r in rows})
    acc = {v: {(r["prompt"], r["seed"]): r["accuracy"] for r in rows if (r["representation"], r["method"]) == v}
           for v in variants}
    for v in variants:
        vs = [r for r in rows if (r["representation"], r["method"]) == v]
        e = bootstrap_mean([r["accuracy"] for r in vs], clusters=[r["prompt"] for r in vs])
        secs = np.mean([r["seconds"] for r in vs if r["seconds"] is not None] or [np.nan])
        lines.append(f"{v[0]:9s} {v[1]:11s} n={e.n:3d}  judge {e.mean:.3f} [{e.lo:.3f}, {e.hi:.3f}]  "
                     f"{secs:7.1f} s/asset")
    for rep in sorted({v[0] for v in variants}):
        if (rep, "sds") in acc and (rep, "reward-sds") in acc:
            d = paired_difference(acc[(rep, "reward-sds")], acc[(rep, "sds")])
            if d is not None:
                lines.append(f"{rep}: reward-sds - sds  {d.mean:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}] (n={d.n})")
    for method in sorted({v[1] for v in variants}):
        if ("gaussians", method) in acc and ("field", method) in acc:
            d = paired_difference(acc[("gaussians", method)], acc[("field", method)])
            if d is not None:
                lines.append(f"{method}: gaussians - field  {d.mean:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}] (n={d.n})")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", nargs="+", default=list(DEFAULT_PROMPTS))
    ap.add_argument("--methods", nargs="+", default=["sds", "reward-sds"])
    ap.add_argument("--representations", nargs="+", default=["field"], choices=["field", "gaussians"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--views", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("out/bench_3d_judge"))
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from rewardsds.gen3d import Gen3DConfig, run_gen3d

    rows = []
    for prompt in args.prompts:
        for seed in args.seeds:
            for rep in args.representations:
                for method in args.methods:
                    # the field's runs keep the folder layout of earlier versions (seed 0: no suffix)
                    name = prompt.replace(" ", "_") + (f"_s{seed}" if seed else "")
                    out = args.out / (method if rep == "field" else f"{rep}/{method}") / name
                    if not (out / "summary.json").exists():
                        run_gen3d(Gen3DConfig(prompt=prompt, method=method, steps=args.steps, seed=seed, out=out,
                                              representation=rep, progress=False, overwrite=out.exists(),
                                              threads=args.threads or None))
                    acc = judge_views(out, prompt, args.views, seed + 1)
                    secs = json.loads((out / "summary.json").read_text()).get("seconds")
                    rows.append({"prompt": prompt, "seed": seed, "representation": rep, "method": method,
                                 "accuracy": acc, "seconds": secs})
                    print(f"{rep:9s} {method:11s} {prompt:28s} seed {seed}  judge accuracy {acc:.3f}  ({secs} s)",
                          flush=True)
    print()
    print(f"mean judge accuracy of {args.views} random views per asset, 95% CI over prompts:")
    for line in summarise(rows):
        print(line)


if __name__ == "__main__":
    main()
