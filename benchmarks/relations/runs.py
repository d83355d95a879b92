"""The instrumented distillation runs of the relations diagnosis (sections 2-4): one run with a sweep run's
settings, the judge on the current image on every step and on the N previews (with world-clip's reading of
the relation) on every reward step, and the judge-as-reward oracle."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .judged import Judged
from .measures import mean_pairwise_rms, n_distinct, ranking_outcome, swapped_caption


def oracle_reward(reward):
    """The judge as a reward: facts right, world-clip / 1000 breaking ties (rank weights ignore scale)."""
    import torch

    from rewardsds.rewards.base import CallableReward
    from rewardsds.world.judge import judge

    def score(images, prompts):
        tie = reward(images, prompts) / 1000.0
        right = torch.tensor([float(sum(judge(im.numpy(), p).facts.values())) for im, p in zip(images, prompts)])
        return right + tie

    return CallableReward(score, name="judge-oracle")


def distil(prior, reward_model, prompt: str, method: str, seed: int, steps: int, on_step, out_dir: Path):
    """One run with exactly the settings of a `rewardsds sweep` run (world defaults, resolved as
    `run_generate` resolves them), built from the library pieces so that the reward can be replaced."""
    import torch

    from rewardsds.config import GenerateConfig, guidance_config, loop_config, resolve
    from rewardsds.loop import run
    from rewardsds.losses import build_guidance
    from rewardsds.representations.image import init_image

    cfg = resolve(GenerateConfig(prompt=prompt, method=method, seed=seed, steps=steps, out=out_dir, progress=False,
                                 threads=1))
    gcfg, lcfg = guidance_config(cfg), loop_config(cfg)
    lcfg = replace(lcfg, checkpoint_every=10**7, frame_every=0)  # no files, no frames: same maths
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x0 = init_image(prior, cfg.init, 1, generator)
    guidance = build_guidance(gcfg, prior, reward_model if gcfg.uses_reward else None, generator_seed=seed)
    return run(guidance, [prompt], x0, lcfg, generator, out_dir=None, progress=False, on_step=on_step), cfg


def measure_run(prior, clip, reward_model, prompt: str, method: str, seed: int, steps: int, tmp: Path) -> dict:
    """Distil one image, judging the current image on every step and the candidates on reward steps."""

    swap = swapped_caption(prompt)
    records = []

    def on_step(rec: dict) -> None:
        cur = Judged(prior.decode(rec["x0"])[0].cpu().numpy(), prompt, swap)
        r = {"step": rec["step"], "t": int(rec["t"]), "cur_layout": cur.layout, "cur_right": cur.right}
        prev = rec.get("previews")
        if prev is not None:
            prev = prev.detach().float().cpu()
            rewards = np.asarray(rec["rewards"][0], dtype=np.float64)  # what the run ranked by
            js = [Judged(im.numpy(), prompt, swap) for im in prev]
            clip_true = clip(prev, [prompt] * len(prev)).numpy().astype(np.float64)
            clip_swap = clip(prev, [swap] * len(prev)).numpy().astype(np.float64)
            top, bottom = int(np.argmax(rewards)), int(np.argmin(rewards))
            rel = [j.rel for j in js]
            readable = [i for i, j in enumerate(js) if j.layout in ("right", "inverted")]
            r.update({
                "any_rel": any(rel), "frac_rel": float(np.mean(rel)), "any_all": any(j.all for j in js),
                "frac_rel_lenient": float(np.mean([j.rel_lenient for j in js])),
                "frac_distinct": float(np.mean([j.distinct for j in js])),
                "any_distinct": any(j.distinct for j in js),
                "frac_twin": float(np.mean([j.cls == "twin" for j in js])),
                "classes": [j.cls for j in js], "top": top, "bottom": bottom,
                "rewards": [round(float(x), 3) for x in rewards],
                # the reward's pick when some previews show both objects and others do not
                "top_distinct_when_mixed": (bool(js[top].distinct)
                                            if 0 < sum(j.distinct for j in js) < len(js) else None),
                "chance_distinct_when_mixed": (float(np.mean([j.distinct for j in js]))
                                               if 0 < sum(j.distinct for j in js) < len(js) else None),
                "frac_objects_ok": float(np.mean([j.objects_ok for j in js])),
                "rms": mean_pairwise_rms(prev.numpy()), "distinct": n_distinct([j.facts for j in js]),
                "rank": ranking_outcome(js[top].right, js[bottom].right),
                "rank_rel": (int(js[top].rel) - int(js[bottom].rel)) if js[top].rel != js[bottom].rel else None,
                "rel_split": 0 < sum(rel) < len(rel),
                # the top candidate's relation when the candidates disagree on it
                "top_rel_when_split": bool(js[top].rel) if 0 < sum(rel) < len(rel) else None,
                "chance_rel_when_split": float(np.mean(rel)) if 0 < sum(rel) < len(rel) else None,
                "keep_layout": float(np.mean([j.layout == cur.layout for j in js])),
                "top_clip_prefers_true": bool(clip_true[top] > clip_swap[top]),
                "clip_agrees_judge": [bool((clip_true[i] > clip_swap[i]) == (js[i].layout == "right"))
                                      for i in readable],
                "gap_true_swap": float(np.mean(np.abs(clip_true - clip_swap))),
                "reward_spread": float(rewards.max() - rewards.min()),
                "reward_std": float(rewards.std()),
            })
        records.append(r)

    t0 = time.time()
    result, cfg = distil(prior, reward_model, prompt, method, seed, steps, on_step, tmp)
    final = Judged(result.images[0].numpy(), prompt, swap)
    layouts = [r["cur_layout"] for r in records]
    changes = [i for i in range(1, len(layouts)) if layouts[i] != layouts[i - 1]]
    return {"prompt": prompt, "method": method, "seed": seed, "seconds": round(time.time() - t0, 1),
            "final": final.summary(), "final_image": result.images[0],
            "final_clip": float(clip(result.images, [prompt])[0]),
            "final_clip_swap": float(clip(result.images, [swap])[0]),
            "lock_in_step": (changes[-1] if changes else 0), "layout_changes": len(changes),
            "layout_at": {s: layouts[min(s, len(layouts) - 1)] for s in (10, 25, 50, 100, len(layouts) - 1)},
            "records": records, "cfg": {"cfg": cfg.cfg, "preview_cfg": cfg.preview_cfg, "n": cfg.n_noises,
                                        "lr": cfg.lr, "reward": cfg.reward}}
