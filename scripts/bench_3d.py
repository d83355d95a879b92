"""Seconds per text-to-3D step and peak memory at 32 and 64 px renders.

    OMP_NUM_THREADS=1 python scripts/bench_3d.py [--steps 4] [--views 4] [--threads 1] [--method sds]

First with the analytic GaussianPrior (the renderer + field + optimiser cost alone, the prior is
free), then with the embedded world prior when `rewardsds/world/weights/prior` exists and loads.
Peak memory is the process's maximum resident set size (getrusage), so it only ever grows: each
line reports the peak so far. The first step of each setting is a warm-up and is not timed.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewardsds.gen3d import Gen3DConfig, train  # noqa: E402
from rewardsds.losses import GuidanceConfig, build_guidance  # noqa: E402
from rewardsds.rewards import CallableReward  # noqa: E402


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def bench(name: str, prior, res: int, args) -> None:
    reward = CallableReward(lambda im, _: im[:, 0].mean((1, 2)), "redness")
    g = build_guidance(GuidanceConfig(method=args.method, cfg=20.0, n_noises=args.n_noises), prior, reward)
    cfg = Gen3DConfig(prompt=args.prompt, steps=1, views=args.views, render_resolutions=(res,),
                      n_samples=args.samples, progress=False, reward_steps=1.0)
    train(cfg, g, torch.Generator().manual_seed(0), progress=False)  # warm-up
    cfg = Gen3DConfig(**{**cfg.__dict__, "steps": args.steps})
    t0 = time.perf_counter()
    train(cfg, g, torch.Generator().manual_seed(0), progress=False)
    dt = (time.perf_counter() - t0) / args.steps
    print(f"{name:8s} {res:3d} px  V={args.views} S={args.samples} {args.method:10s}  "
          f"{dt:6.3f} s/step  peak RSS {peak_mib():7.0f} MiB", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--method", default="sds", choices=["sds", "reward-sds"])
    ap.add_argument("--n-noises", type=int, default=4)
    ap.add_argument("--prompt", default="a red circle")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[32, 64])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), start RSS {peak_mib():.0f} MiB")

    from rewardsds.priors.analytic import GaussianPrior

    for res in args.resolutions:
        bench("gaussian", GaussianPrior({args.prompt: (0.86, 0.12, 0.12)}, size=res), res, args)

    path = ROOT / "rewardsds" / "world" / "weights" / "prior"
    if not path.is_dir():
        print(f"world prior: {path} not found, skipped")
        return
    from rewardsds.priors.diffusers_prior import DiffusersPrior, PriorLoadError

    try:
        prior = DiffusersPrior.from_pretrained(path, device="cpu")
    except PriorLoadError as e:
        print(f"world prior: could not load ({e}), skipped")
        return
    print(f"world prior: image size {prior.image_size}, renders resized to it")
    for res in args.resolutions:
        bench("world", prior, res, args)


if __name__ == "__main__":
    main()
