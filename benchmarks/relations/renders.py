"""Section 3b of the relations diagnosis: world-clip on clean (and blurred) renders of scenes satisfying each
caption, against the relation-swapped caption and against twin renders, and its part of the report."""

from __future__ import annotations

import random
import time
from dataclasses import replace

import numpy as np

from .measures import scene_for


def twins(scene):
    """The two 'twin' images of a two-object scene: one object drawn at both positions (the other absent)."""
    a, b = scene.objects
    return (replace(scene, objects=(a, replace(a, cx=b.cx, cy=b.cy))),
            replace(scene, objects=(replace(b, cx=a.cx, cy=a.cy), b)))


def measure_clean(clip, prompts: list[str], renders: int, seed: int) -> dict:
    """world-clip on clean (and blurred) renders of each caption's scenes: the caption against its
    relation-swapped caption (on the render and on the swapped render), and the true render against
    its two twins (one object drawn twice) under the caption."""
    import torch

    from rewardsds.world.degrade import degrade
    from rewardsds.world.judge import judge
    from rewardsds.world.negatives import swapped
    from rewardsds.world.scenes import render

    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    rows: dict[str, list] = {}
    judge_ok, gaps, twin_gaps = [], [], []
    twin_rows: dict[str, list] = {}
    for p in prompts:
        scenes = [scene_for(p, rng) for _ in range(renders)]
        swap = swapped(scenes[0]).caption()
        true_img = torch.from_numpy(np.stack([render(s).transpose(2, 0, 1) for s in scenes]))
        swap_img = torch.from_numpy(np.stack([render(swapped(s)).transpose(2, 0, 1) for s in scenes]))
        judge_ok += [judge(im.numpy(), p).all_correct for im in true_img]
        twin_img = [torch.from_numpy(np.stack([render(twins(s)[k]).transpose(2, 0, 1) for s in scenes]))
                    for k in (0, 1)]
        for sev in (0.0, 0.3, 0.6, 1.0):
            a = true_img if sev == 0 else degrade(true_img, "blur", torch.full((renders,), sev), g)
            b = swap_img if sev == 0 else degrade(swap_img, "blur", torch.full((renders,), sev), g)
            ta, sa = clip(a, [p] * renders), clip(a, [swap] * renders)
            tb, sb = clip(b, [p] * renders), clip(b, [swap] * renders)
            wins = torch.cat([(ta > sa), (sb > tb)]).float().mean().item()
            rows.setdefault(f"blur {sev:g}", []).append(wins)
            tw = [clip(x if sev == 0 else degrade(x, "blur", torch.full((renders,), sev), g), [p] * renders)
                  for x in twin_img]
            twin_rows.setdefault(f"blur {sev:g}", []).append(torch.cat([ta > t for t in tw]).float().mean().item())
            if sev == 0:
                gaps += (ta - sa).abs().tolist() + (tb - sb).abs().tolist()
                twin_gaps += torch.cat([ta - t for t in tw]).tolist()
    return {"per_prompt": rows, "twin_per_prompt": twin_rows,
            "judge_all_correct_on_renders": float(np.mean(judge_ok)),
            "gap_true_swap_clean": float(np.mean(gaps)), "gap_true_minus_twin_clean": float(np.mean(twin_gaps)),
            "gap_true_minus_twin_clean_min": float(np.min(twin_gaps))}


def report_renders(clip, prompts, renders: int, say) -> dict:
    t0 = time.time()
    clean = measure_clean(clip, prompts, renders, seed=99)
    say(f"\n== 3b. world-clip on renders: true caption vs relation-swapped caption ({time.time() - t0:.0f} s)")
    say(f"judge all-facts on the clean renders (sanity): {clean['judge_all_correct_on_renders']:.3f}")
    for k, v in clean["per_prompt"].items():
        say(f"  {k:9s}: clip picks the right one of (caption, swapped) {np.mean(v):.3f} (per prompt min {min(v):.2f})")
    say(f"  mean |clip(true) - clip(swapped)| on clean renders: {clean['gap_true_swap_clean']:.3f}")
    for k, v in clean["twin_per_prompt"].items():
        say(f"  {k:9s}: clip scores the render above both its twins (one object twice) {np.mean(v):.3f} "
            f"(per prompt min {min(v):.2f})")
    say(f"  mean clip(true render) - clip(twin render) under the caption: {clean['gap_true_minus_twin_clean']:.3f} "
        f"(min {clean['gap_true_minus_twin_clean_min']:.3f})")

    return clean
