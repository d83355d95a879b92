"""Benchmark (not a test): seconds per step, prior calls per step and peak memory of the 2D engine.

    python scripts/bench_engine.py [--prior world] [--steps 5] [--threads 2]

For SDS and for RewardSDS at N in {2, 4, 8, 10} and S in {1, 4, 15} on the embedded world (CPU),
with the world CLIP reward. Peak memory is the process's max RSS (it only grows, so it is reported
after each configuration as the running maximum).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", default="world")
    ap.add_argument("--reward", default="world-clip")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--ns", default="2,4,8,10")
    ap.add_argument("--ss", default="1,4,15")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from rewardsds.commands.common import load_prior, load_reward_model
    from rewardsds.loop import LoopConfig, run
    from rewardsds.losses import GuidanceConfig, build_guidance
    from rewardsds.representations.image import init_image

    prior, _ = load_prior(args.prior, torch.device("cpu"))
    reward = load_reward_model(args.reward, torch.device("cpu"))
    configs = [("sds", 1, 1)] + [("reward-sds", n, s) for n in map(int, args.ns.split(","))
                                 for s in map(int, args.ss.split(","))]
    print(f"prior={args.prior} reward={args.reward} steps={args.steps} threads={torch.get_num_threads()}")
    print(f"{'method':12s} {'N':>3s} {'S':>3s} {'s/step':>8s} {'calls/step':>10s} {'peak RSS MiB':>12s}")
    for method, n, s in configs:
        g = build_guidance(GuidanceConfig(method=method, n_noises=n, denoise_steps=s, cfg=20.0), prior, reward)
        gen = torch.Generator().manual_seed(0)
        x0 = init_image(prior, "colour", 1, gen)
        # one warm-up step (allocations, text-embedding cache), then the timed steps
        run(g, ["a red circle"], x0, LoopConfig(steps=1, frame_every=0), gen, progress=False)
        t0 = time.perf_counter()
        res = run(g, ["a red circle"], x0, LoopConfig(steps=args.steps, frame_every=0), gen, progress=False)
        dt = (time.perf_counter() - t0) / args.steps
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{method:12s} {n:3d} {s:3d} {dt:8.3f} {res.prior_calls / args.steps:10.1f} {rss:12.0f}", flush=True)


if __name__ == "__main__":
    main()
