"""The multi-view prior's gate: do its 4-view samples show one scene?

    python -m rewardsds.world3d.evaluate_mv [--prior DIR] [--samples N] [--steps S] [--threads 1] [--json F]

For N fresh scenes of the training split, each with one camera set of the training distribution
(`data.sample_view_sets`: azimuths a, a+90, a+180, a+270, one elevation in 0-60), the prior draws the 4 views
together (DDIM, eta = 0, CFG, from the view-free caption and the cameras: `sample_views`), and
`agreement.views_agree` compares the 2D readings of the views (same objects and colours, left/right order
consistent with the cameras). The gate: at least `MV_GATE` of the samples agree. Beside it, the same figure
on the exact renders of the same scenes and cameras: the ceiling a perfect prior would reach under this reader.

Weights come from `paths.mvprior_dir()` unless --prior names another folder. Missing weights or a bad option
end with one line on stderr naming the fix (exit code 2). The exit code is 0 when the command ran, whatever
the gate says, unless --strict (then 1 when it is not met).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .evaluate import check_sampling, gate_command, save_figures

MV_GATE = 0.70
"""share of 4-view samples whose views' readings agree"""
PROG = "python -m rewardsds.world3d.evaluate_mv"
SEED_OFFSET = 10**12
"""evaluation scenes come from seeds above every training batch's (`common.seed_for_step`: seed * 1_000_003 + step)"""


def sample_views(prior, captions: list[str], c2w, steps: int = 50, cfg: float = 4.0, generator=None):
    """Images [B*V,3,H,W] in [0,1]: for each caption one sample of V views (rows i*V + v), their cameras c2w
    [B*V,4,4], drawn together by the project's one sampler (`sampling.sample`: DDIM from pure noise, the last
    t with alpha_bar >= 1e-4; x0 clipped for pixel priors)."""
    from ..sampling import sample

    v = prior.views_per_sample
    rows = len(captions) * v
    if c2w.shape[0] != rows:
        raise ValueError(f"{len(captions)} captions of {v} views need {rows} cameras, got {c2w.shape[0]}")
    return sample(prior, [c for c in captions for _ in range(v)], steps, cfg, generator, cameras=c2w)


def agreement_rate(images, captions: list[str], c2w, views: int) -> float:
    """Share of the samples (V consecutive rows of images [B*V,3,H,W] and c2w [B*V,4,4] each) whose views agree
    (`agreement.views_agree`)."""
    from .agreement import views_agree

    ok = [views_agree(images[i * views:(i + 1) * views].float().cpu().numpy(), cap,
                      c2w[i * views:(i + 1) * views]).agrees for i, cap in enumerate(captions)]
    return sum(ok) / len(ok)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from . import paths

    p = argparse.ArgumentParser(prog=PROG, description="Print the multi-view prior's gate: the share of 4-view "
                                "samples whose views' 2D readings agree.")
    p.add_argument("--prior", type=Path, default=paths.mvprior_dir(), help="multi-view prior folder")
    p.add_argument("--samples", type=int, default=100, help="4-view samples (one fresh scene each)")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps per sample (1 to 1000)")
    p.add_argument("--cfg", type=float, default=4.0, help="classifier-free guidance scale (>= 0)")
    p.add_argument("--batch", type=int, default=16, help="samples per forward pass")
    p.add_argument("--seed", type=int, default=0, help="seeds scenes, cameras and sampler noise")
    p.add_argument("--threads", default=None, help="CPU threads for torch: N or auto")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    p.add_argument("--strict", action="store_true", help="exit 1 when the gate is not met")
    return p.parse_args(argv)


def check(args: argparse.Namespace) -> str | None:
    """The first unusable option or missing weights, as one sentence; None when all is well."""
    if args.samples < 1 or args.batch < 1:
        return f"--samples and --batch must be at least 1, got {args.samples} and {args.batch}"
    problem = check_sampling(args)
    if problem:
        return problem
    if not (Path(args.prior) / "model_index.json").is_file():
        from .paths import TRAIN_COMMANDS

        return (f"the multi-view prior weights are missing ({str(Path(args.prior) / 'model_index.json')!r} does not "
                f"exist); train them with `{TRAIN_COMMANDS['clip']}` then `{TRAIN_COMMANDS['mvprior']}`")
    return None


def run(args: argparse.Namespace) -> dict:
    """Sample, read and print the gate; returns the figures (as written by --json)."""
    import torch
    from tqdm import tqdm

    from ..commands.common import pick_device
    from ..priors.multiview import MultiViewPrior
    from .data import sample_view_sets

    t0 = time.time()
    prior = MultiViewPrior.from_pretrained(args.prior, device=pick_device(args.device))
    v, size = prior.views_per_sample, prior.image_size
    g = torch.Generator().manual_seed(args.seed)
    got = ref = 0.0
    for i in tqdm(range(0, args.samples, args.batch), desc=f"4-view samples ({args.batch} a batch)"):
        n = min(args.batch, args.samples - i)
        renders, captions, _, c2w = sample_view_sets(SEED_OFFSET + args.seed * 1_000_003 + i, n, size, v)
        images = sample_views(prior, captions, c2w, args.steps, args.cfg, g)
        got += agreement_rate(images, captions, c2w, v) * n
        ref += agreement_rate(torch.from_numpy(renders), captions, c2w, v) * n
    got, ref = got / args.samples, ref / args.samples
    met = got >= MV_GATE
    print(f"multi-view agreement: {got:.3f} of {args.samples} samples (exact renders {ref:.3f}); gate >= "
          f"{MV_GATE:.2f} {'met' if met else 'NOT met'}  ({time.time() - t0:.1f} s)")
    results = {"config": {k: str(val) for k, val in vars(args).items()}, "agreement": got, "renderer": ref,
               "gate": {"value": got, "threshold": MV_GATE, "met": met}, "seconds": round(time.time() - t0, 1)}
    save_figures(args.json, results)
    return results


def main(argv: list[str] | None = None) -> int:
    return gate_command(PROG, parse_args(argv), check, run, lambda r: r["gate"]["met"])


if __name__ == "__main__":
    sys.exit(main())
