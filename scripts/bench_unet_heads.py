"""The world priors' U-Net with 32 heads of 2-4 channels (the shipped weights) against heads of 32 channels
(`world.train.prior.unet_config` today): same parameters, time of one forward pass on CPU.

    python scripts/bench_unet_heads.py [--images 32] [--size 32] [--threads 1] [--repeats 3]

diffusers' UNet2DConditionModel reads `attention_head_dim` as the number of heads, so the shipped world
priors (config.json: attention_head_dim 32) attend with 32 heads of 64/32 and 128/32 channels. 32 images
is a RewardSDS step of gen3d on the 3D world (N = 4 candidates x 4 views x 2 for guidance). Random weights:
the time does not depend on them. Prints the best of --repeats per variant and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    for name in ("images", "size", "threads", "repeats"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.size % 4:
        ap.error(f"--size must be a multiple of 4 (the U-Net halves it twice), got {args.size}")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    from diffusers import UNet2DConditionModel

    from rewardsds.world.train.prior import unet_config

    torch.set_num_threads(args.threads)
    today = unet_config(args.size, 64)
    best = {}
    for name, cfg in (("32 heads (shipped weights)", {**today, "attention_head_dim": 32}),
                      ("heads of 32 channels (unet_config)", today)):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(**cfg).eval()
        heads = sorted({m.heads for n, m in unet.named_modules() if n.endswith("attn1")})
        x = torch.randn(args.images, 3, args.size, args.size)
        t = torch.randint(0, 1000, (args.images,))
        text = torch.randn(args.images, 8, 64)
        with torch.inference_mode():
            unet(x, t, text)  # warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                unet(x, t, text)
                times.append(time.perf_counter() - t0)
        best[name] = min(times)
        print(f"{name}: heads {heads}, {sum(p.numel() for p in unet.parameters())} parameters, "
              f"{best[name]:.3f} s per forward of {args.images} images ({args.threads} thread(s))")
    a, b = best.values()
    print(f"ratio: {a / b:.2f}x")


if __name__ == "__main__":
    main()
