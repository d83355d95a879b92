"""The 3D world's gates: are its trained prior and CLIP good enough to build 3D distillation on?

    python -m rewardsds.world3d.evaluate [--prior DIR] [--clip DIR] [--samples N] [--threads 1] [--device cuda]
        [--json F]

The 3D counterpart of `rewardsds world-eval` (`rewardsds.world.evaluate`), printing each gate as met or
NOT met with its figure:

(a) prior: DDIM samples (the project's one sampler, `sampling.sample`: <= 50 steps, CFG) of fresh
    single-object captions with a random view's suffix (", side view"), read by the 2D reader of a view
    (`world3d.read`): the share with every fact right must reach `PRIOR_GATE`. Two-object captions
    (relations) and held-out colour-shape pairs are reported too, ungated (``--kinds`` picks which are
    sampled), with how many samples got each fact wrong, and next to every figure the reader's score on
    the renderer's own images of the same captions and views: the ceiling a perfect prior would reach
    under this reader;
(b) CLIP: the true caption scores above every hard negative (`world3d.negatives`) on fresh renders from
    random views, training pairs gated at `CLIP_GATE`, held-out pairs reported; captions as the CLIP was
    trained to read them (`paths.clip_captions`: view words, or the camera's frame).

Weights come from `world3d.paths` unless --prior / --clip name other folders. Missing weights or a bad
option end with one line on stderr naming the fix (exit code 2), as the `rewardsds` commands do. The
exit code is 0 when the command ran, whatever the gates say, unless --strict (then 1 if a gate is
not met), so that a report never passes for a crash.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

PRIOR_GATE = 0.80
"""share of single-object prior samples with every fact the reader asks right"""
CLIP_GATE = 0.90
"""hard-negative accuracy of the 3D CLIP on training pairs"""
PARTS = ("prior", "clip")
KINDS = ("single", "relation", "heldout")
"""the prior part's caption kinds: single objects (gated), two objects (relations), held-out colour-shape pairs"""
PROG = "python -m rewardsds.world3d.evaluate"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from . import paths

    p = argparse.ArgumentParser(prog=PROG, description="Print the 3D world's gates (prior read right by the "
                                "view reader; CLIP hard-negative accuracy), each met or NOT met.")
    p.add_argument("--prior", type=Path, default=paths.prior_dir(), help="3D prior folder (model_index.json, unet/...)")
    p.add_argument("--clip", type=Path, default=paths.clip_dir(), help="3D CLIP folder (config.json, tokenizer)")
    p.add_argument("--samples", type=int, default=200, help="prior samples per category (held-out: half)")
    p.add_argument("--clip-scenes", type=int, default=300, help="fresh renders per split for the CLIP gate")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps per prior sample (1 to 1000)")
    p.add_argument("--cfg", type=float, default=4.0, help="classifier-free guidance scale (>= 0)")
    p.add_argument("--batch", type=int, default=50, help="prior samples per forward pass")
    p.add_argument("--seed", type=int, default=0, help="seeds captions, views and sampler noise")
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS, help="which gates to compute")
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS,
                   help="which caption kinds the prior part samples (the gate is single's; a sweep of --cfg "
                        "or --steps on single alone takes a fifth of the time)")
    p.add_argument("--threads", default=None, help="CPU threads for torch: N or auto")
    p.add_argument("--device", default="cpu", help="where the prior samples: auto, cpu, cuda, cuda:N or mps "
                   "(float16 on CUDA; the CLIP part, a few seconds, stays on the CPU)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    p.add_argument("--strict", action="store_true", help="exit 1 when a gate is not met")
    return p.parse_args(argv)


def check(args: argparse.Namespace) -> str | None:
    """The first unusable option or missing weights, as one sentence; None when all is well."""
    if args.samples < 2:
        return f"--samples must be at least 2 (held-out captions are samples // 2), got {args.samples}"
    if args.clip_scenes < 1 or args.batch < 1:
        return f"--clip-scenes and --batch must be at least 1, got {args.clip_scenes} and {args.batch}"
    problem = check_sampling(args)
    if problem:
        return problem
    from .paths import TRAIN_COMMANDS

    needed = {"prior": (args.prior, "model_index.json"), "clip": (args.clip, "config.json")}
    for part in PARTS:
        folder, marker = needed[part]
        if part in args.parts and not (Path(folder) / marker).is_file():
            return (f"the 3D world {part} weights are missing ({str(Path(folder) / marker)!r} does not exist); "
                    f"train them with `{TRAIN_COMMANDS['clip']}` then `{TRAIN_COMMANDS['prior']}`"
                    + ("" if Path(folder).name == part else f" (--out {folder})"))
    return None


def check_sampling(args: argparse.Namespace) -> str | None:
    """The options every gate command takes (--steps, --cfg, --json, --device): the first unusable one, or None."""
    if not 1 <= args.steps <= 1000:
        return f"--steps must be between 1 and 1000, got {args.steps}"
    if not (math.isfinite(args.cfg) and args.cfg >= 0):
        return f"--cfg must be a finite number >= 0, got {args.cfg}"
    if args.json is not None and args.json.is_dir():
        return f"--json {str(args.json)!r} is a folder; give the name of a file to write"
    from ..commands.common import UserError, pick_device

    try:
        pick_device(args.device)  # an unknown device, or CUDA where there is none, before any weights load
    except UserError as e:
        return str(e)
    return None


def save_figures(path: Path | None, results: dict) -> None:
    """--json: write a gate command's figures there (nothing when it is None)."""
    if path is not None:
        from .. import media

        media.save_json(path, results)
        print(f"wrote {path}")


def gate_command(prog: str, args: argparse.Namespace, check: Callable, run: Callable, met: Callable) -> int:
    """A gate command's main once its options are parsed: threads (before the parts import torch, so OpenMP
    sees the count), then `check` (a problem is one line on stderr, exit 2), then `run`. Exit 1 when --strict
    and `met(results)` is false, else 0, so that a report never passes for a crash."""
    from ..threads import configure_threads

    try:
        configure_threads(args.threads)
    except ValueError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    problem = check(args)
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        return 2
    results = run(args)
    return 1 if args.strict and not met(results) else 0


def captions(n: int, kind: str, seed: int) -> list[tuple[object, str, float, float]]:
    """n (scene, view-suffixed caption, azimuth, elevation): kind single | relation | heldout. Views are
    the training data's (`data.sample_views`: elevation 0-60, so never overhead)."""
    from .data import sample_views
    from .scenes import sample_scene, view_suffix

    rng = random.Random(seed)
    az, el = sample_views(n, seed)
    out = []
    for i in range(n):
        if kind == "relation":
            sc = sample_scene(rng, 2, "train")
        else:
            sc = sample_scene(rng, 1, "heldout" if kind == "heldout" else "train")
        out.append((sc, sc.caption(rng) + view_suffix(float(az[i]), float(el[i])), float(az[i]), float(el[i])))
    return out


def _mean(values) -> float | None:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else None


def _summary(readings) -> dict:
    """Shares right, and how many readings got each fact wrong (which fact limits the prior: the object
    count, a shape, a colour, the relation)."""
    rel = [r.facts["relation"] for r in readings if "relation" in r.facts]
    misses = Counter(k for r in readings for k, ok in r.facts.items() if not ok)
    return {"facts_right": _mean(r.accuracy for r in readings),
            "every_fact_right": _mean(r.all_correct for r in readings),
            "relation_right": _mean(rel), "relation_asked": len(rel), "misses": dict(misses.most_common())}


def eval_prior(args: argparse.Namespace) -> dict:
    """Sample the prior for each caption category, read every sample and the matching exact render."""
    import torch

    from ..commands.common import pick_device
    from ..priors.diffusers_prior import DiffusersPrior
    from ..sampling import sample
    from .read import read_view
    from .render import render_views

    prior = DiffusersPrior.from_pretrained(str(args.prior), device=pick_device(args.device))
    size = prior.image_size
    from tqdm import tqdm

    figures = {}
    for j, (kind, n) in enumerate((("single", args.samples), ("relation", args.samples),
                                   ("heldout", args.samples // 2))):
        if kind not in args.kinds:
            continue
        # captions and sampler noise are seeded per kind (j is the kind's own), so that a kind's figures
        # never depend on --kinds; at --seed 0 the gated single kind draws exactly what it always drew
        g = torch.Generator().manual_seed(args.seed * 1000 + j)
        items = captions(n, kind, args.seed * 1000 + j)
        got, ref = [], []
        for i in tqdm(range(0, n, args.batch), desc=f"prior samples ({kind}, {args.batch} a batch)"):
            chunk = items[i:i + args.batch]
            images = sample(prior, [c for _, c, _, _ in chunk], steps=args.steps, cfg=args.cfg, generator=g)
            for img, (sc, cap, az, el) in zip(images.float().cpu(), chunk):
                got.append(read_view(img.numpy(), cap))
                ref.append(read_view(render_views(sc, [az], [el], size, supersample=2)[0].numpy(), cap))
        figures[kind] = {"n": n, **_summary(got), "renderer": _summary(ref)}
    return figures


def eval_clip(args: argparse.Namespace) -> dict:
    from transformers import AutoTokenizer, CLIPModel

    from .negatives import hard_negative_accuracy
    from .paths import clip_captions

    model = CLIPModel.from_pretrained(args.clip).eval()
    tok = AutoTokenizer.from_pretrained(args.clip)
    size = model.config.vision_config.image_size
    camera = clip_captions(args.clip) == "camera-frame"  # captioned as this CLIP was trained, and as gen3d asks it
    return {s: hard_negative_accuracy(model, tok, n=args.clip_scenes, split=s, image_size=size, camera_frame=camera)
            for s in ("train", "heldout")}


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _gate(name: str, value: float | None, threshold: float) -> dict:
    met = value is not None and value >= threshold
    print(f"gate {name}: {_fmt(value)} (needs >= {threshold:.2f}) {'met' if met else 'NOT met'}")
    return {"value": value, "threshold": threshold, "met": met}


def run(args: argparse.Namespace) -> dict:
    """Compute and print the figures and gates of the chosen parts; returns them (as written by --json)."""
    t0 = time.time()
    results: dict = {"config": {k: str(v) for k, v in vars(args).items()}, "gates": {}}
    if "prior" in args.parts:
        results["prior"] = eval_prior(args)
        for kind, f in results["prior"].items():
            rel = (f"  relation right {_fmt(f['relation_right'])} of {f['relation_asked']} asked"
                   f" (renderer {_fmt(f['renderer']['relation_right'])})") if kind == "relation" else ""
            print(f"prior {kind:8s} n {f['n']}  facts right {_fmt(f['facts_right'])}"
                  f" (renderer {_fmt(f['renderer']['facts_right'])})  every fact right"
                  f" {_fmt(f['every_fact_right'])} (renderer {_fmt(f['renderer']['every_fact_right'])}){rel}")
            misses = ", ".join(f"{k} {v}" for k, v in f["misses"].items()) or "none"
            print(f"  samples with the fact wrong: {misses}")
        if "single" in results["prior"]:
            results["gates"]["prior_single_every_fact_right"] = _gate(
                "prior single objects read right", results["prior"]["single"]["every_fact_right"], PRIOR_GATE)
    if "clip" in args.parts:
        results["clip"] = eval_clip(args)
        print(f"clip hard-negative accuracy: train pairs {_fmt(results['clip']['train'])}, "
              f"held-out pairs {_fmt(results['clip']['heldout'])} ({args.clip_scenes} renders each)")
        results["gates"]["clip_hard_negative_accuracy"] = _gate(
            "clip hard-negative accuracy (train pairs)", results["clip"]["train"], CLIP_GATE)
    met = sum(g["met"] for g in results["gates"].values())
    print(f"gates met: {met} of {len(results['gates'])}  ({time.time() - t0:.1f} s)")
    results["seconds"] = round(time.time() - t0, 1)
    save_figures(args.json, results)
    return results


def main(argv: list[str] | None = None) -> int:
    return gate_command(PROG, parse_args(argv), check, run, lambda r: all(g["met"] for g in r["gates"].values()))


if __name__ == "__main__":
    sys.exit(main())
