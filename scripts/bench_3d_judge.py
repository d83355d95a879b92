"""Does RewardSDS help in 3D on the world? Judge accuracy of random views, SDS vs RewardSDS.

    python scripts/bench_3d_judge.py [--prompts "a red circle" ...] [--steps 300] [--views 10]

For each world prompt and method, `rewardsds gen3d` distils a field (world defaults: 4 views per
step at 32 px, reward on the first half of the steps, t_max annealed 0.98 -> 0.5); then `--views`
random orbit views of the finished field (elevation 0-30 degrees, any azimuth, seeded) are rendered on
the world's backdrop at 32 px and graded by the exact judge. Prints mean accuracy per method and the
per-prompt figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

DEFAULT_PROMPTS = ("a red circle", "a blue square", "a yellow triangle", "a green circle", "a purple square")


def judge_field(field_pt: Path, prompt: str, views: int, seed: int) -> float:
    from rewardsds.export3d import render_views
    from rewardsds.gen3d import load_field
    from rewardsds.render import SolidBackground
    from rewardsds.world.judge import judge
    from rewardsds.world.scenes import BACKGROUND as WORLD_BACKGROUND

    field, renderer = load_field(field_pt)
    g = torch.Generator().manual_seed(seed)
    azimuths = (torch.rand(views, generator=g) * 360).tolist()
    elevations = (torch.rand(views, generator=g) * 30).tolist()
    bg = SolidBackground(WORLD_BACKGROUND)
    accs = []
    with torch.no_grad():
        for az, el in zip(azimuths, elevations):
            img = render_views(field, renderer, azimuths=(az,), resolution=32, elevation=el,
                               background=bg)[0]
            accs.append(judge(img.astype(np.float32) / 255, prompt).accuracy)
    return float(np.mean(accs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", nargs="+", default=list(DEFAULT_PROMPTS))
    ap.add_argument("--methods", nargs="+", default=["sds", "reward-sds"])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--views", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("out/bench_3d_judge"))
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from rewardsds.gen3d import Gen3DConfig, run_gen3d

    table: dict[str, list[float]] = {m: [] for m in args.methods}
    for prompt in args.prompts:
        for method in args.methods:
            out = args.out / method / prompt.replace(" ", "_")
            if not (out / "summary.json").exists():
                run_gen3d(Gen3DConfig(prompt=prompt, method=method, steps=args.steps, seed=args.seed, out=out,
                                      progress=False))
            acc = judge_field(out / "field.safetensors", prompt, args.views, args.seed + 1)
            secs = json.loads((out / "summary.json").read_text()).get("seconds")
            table[method].append(acc)
            print(f"{method:11s} {prompt:28s} judge accuracy {acc:.3f}  ({secs} s)", flush=True)
    for method, accs in table.items():
        print(f"{method:11s} mean judge accuracy over {len(accs)} prompts x {args.views} views: {np.mean(accs):.3f}")


if __name__ == "__main__":
    main()
