"""Where SDS fails most: why RewardSDS lifts the judge on single objects but hardly on relations.

    OMP_NUM_THREADS=1 python benchmarks/relations_diagnosis.py [--k 8] [--seeds 0] [--steps 150]
        [--methods sds reward-sds] [--oracle] [--prior-samples 8] [--prior-cfgs 4 20] [--prior DIR]
        [--parts prior renders runs] [--tag SUFFIX] [--records FILE.jsonl]
        [--out benchmarks/results/relations_diagnosis]

Cost: a RewardSDS run is ~25 s and an SDS run ~7.5 s on one idle core (world_tables.sh), plus the
judging of the current image and the N previews on every step (~8 ms per judge call). Measured here
while 5-9 other processes shared the 2 cores: 27 min wall for 8 prompts x (sds,
reward-sds) + 64 prior samples; --oracle adds about one RewardSDS run per prompt.

On K two-object prompts with a spatial relation (every `--every`-th line of the relations section of
benchmarks/world_prompts.txt), with the world defaults of the paper tables (150 steps, N = 4, S = 1,
top-bottom weights, world-clip, CFG 20, preview CFG 7.5, init = background colour), it measures:

1. prior: DDIM samples of the world prior on the same prompts (`rewardsds.sampling.sample`, the
   sampler `world-eval` uses; 50 steps, CFG 4 and any other `--prior-cfgs`): judge accuracy, every fact
   right, relation right, and the failure classes of (4);
2. candidates: on every reward step (recorded through `loop.run(on_step=...)`), the judge's verdict on
   each of the N previews: how often ANY preview has the relation right, how different the N previews
   are (mean pairwise RMS pixel distance; number of distinct judge fact-vectors), and whether the
   reward's top candidate has more judge facts right than its bottom one (ranking agreement), binned
   by t; also whether the previews keep the current image's layout;
3. reward: world-clip's relation reading: does it score the caption above its relation-swapped caption
   (`world.negatives.swapped`) on the top preview, how often its preference agrees with the judge on
   previews whose layout the judge can read, how large that true-vs-swapped gap is next to the spread of
   the N candidates' rewards, and the same on clean renders of scenes satisfying the caption (and on
   blurred renders, `world.degrade`);
4. optimisation: the final images' failure classes from the judge's facts and components (fewer
   components than stated, more, twin = one stated object drawn twice, wrong colour, wrong shape,
   relation wrong with the right objects) and when the current image's layout locks in.

The judge's own relation fact is vacuous for a twin (two copies of one object satisfy "A left of B" by
taking them in the right order), so the relation is read strictly here: right only when both stated
colours are found in two different components ("distinct objects"); the judge's fact is shown beside it
as "lenient".

`--oracle` adds a RewardSDS run whose reward is the judge itself (facts right, world-clip breaking ties):
an upper bound for a relation-aware reward with the same N candidates. Prints a report and writes
report.txt, diagnosis.json and a few image grids to --out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

PARTS = ("prior", "renders", "runs")
T_BINS = ((0, 300, "t<300"), (300, 600, "300<=t<600"), (600, 1001, "t>=600"))
STEP_BINS = ((0, 25, "steps 0-24"), (25, 75, "steps 25-74"), (75, 10**9, "steps 75+"))
OBJECT_FACTS = ("object0.colour", "object0.shape", "object1.colour", "object1.shape")


# ----------------------------------------------------------------------------------------------------
# pure helpers (tested in tests/test_relations_diagnosis.py)


def relation_prompts(path: Path, every: int = 4, k: int = 8, offset: int = 0) -> list[str]:
    """Every `every`-th prompt (from `offset`) of the prompt file's relations section, at most k."""
    section, lines = None, []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("#"):
            section = line.lower()
        elif line and section is not None and "relation" in section and "held-out" not in section:
            lines.append(line)
    return lines[offset::every][:k]


def scene_for(prompt: str, rng: random.Random):
    """A random scene (positions and sizes drawn as `scenes.sample_scene` draws them) of which the
    two-object caption `prompt` is true."""
    from rewardsds.world.judge import parse_prompt
    from rewardsds.world.scenes import SIZE_RANGES, Obj, Scene

    p = parse_prompt(prompt)
    if len(p.objects) != 2 or p.relation in (None, "and"):
        raise ValueError(f"{prompt!r} is not a two-object prompt with a spatial relation")
    sizes = [o.size or rng.choice(tuple(SIZE_RANGES)) for o in p.objects]
    sides = [rng.uniform(*SIZE_RANGES[s]) for s in sizes]
    near, far = 0.25 + rng.uniform(-0.03, 0.03), 0.75 + rng.uniform(-0.03, 0.03)
    a0, a1 = (near, far) if p.relation in ("left of", "above") else (far, near)
    o0, o1 = 0.5 + rng.uniform(-0.1, 0.1), 0.5 + rng.uniform(-0.1, 0.1)
    horizontal = p.relation in ("left of", "right of")
    pos = [(a0, o0), (a1, o1)] if horizontal else [(o0, a0), (o1, a1)]
    objs = tuple(Obj(o.colour, o.shape, s, *xy, side) for o, s, xy, side in zip(p.objects, sizes, pos, sides))
    mention = tuple(o.size is not None for o in p.objects)
    return Scene(objs, p.relation, mention)


def swapped_caption(prompt: str) -> str:
    """The caption with the inverse relation ("left of" <-> "right of", "above" <-> "below"), via
    `world.negatives.swapped` (canonical wording)."""
    from rewardsds.world.negatives import swapped

    return swapped(scene_for(prompt, random.Random(0))).caption()


def fact_vector(facts: dict[str, bool]) -> tuple[bool, ...]:
    return tuple(facts[k] for k in sorted(facts))


def n_distinct(fact_dicts: list[dict[str, bool]]) -> int:
    """Number of distinct judge fact-vectors among the candidates."""
    return len({fact_vector(f) for f in fact_dicts})


def mean_pairwise_rms(images: np.ndarray) -> float:
    """Mean over pairs of the RMS pixel distance (images [N,...] in [0,1]); 0 for one image."""
    x = images.reshape(len(images), -1).astype(np.float64)
    pairs = list(itertools.combinations(range(len(x)), 2))
    if not pairs:
        return 0.0
    return float(np.mean([np.sqrt(np.mean((x[i] - x[j]) ** 2)) for i, j in pairs]))


def t_bin(t: int) -> str:
    for lo, hi, name in T_BINS:
        if lo <= t < hi:
            return name
    raise ValueError(f"t={t} outside [0, 1000]")


def step_bin(step: int) -> str:
    for lo, hi, name in STEP_BINS:
        if lo <= step < hi:
            return name
    raise ValueError(f"step={step} < 0")


def layout(rel_true: bool, rel_inverse: bool, distinct: bool = True) -> str:
    """The image's layout against the caption: 'unreadable' unless both stated colours are found in two
    different components (two copies of ONE object satisfy any relation and its inverse: the judge's
    relation fact is then vacuous); else 'right' (the stated relation holds), 'inverted' (the inverse
    holds) or 'none' (neither: centres too close along the axis)."""
    if not distinct:
        return "unreadable"
    return "right" if rel_true else ("inverted" if rel_inverse else "none")


def classify(facts: dict[str, bool], colours: list[str], stated: tuple[str, ...]) -> str:
    """One failure class for a two-object image, from the judge's facts and its components' colours.

    Order: correct; fewer components than stated (an object missing or merged into the other); more
    (an object duplicated, or a stray blob); twin (the right number of components, but two of one
    colour: one stated object drawn twice, the other absent); wrong colour (an object's colour, or a
    component of an unstated colour / 'other'); wrong shape or size; relation wrong with the right
    objects."""
    if all(facts.values()):
        return "correct"
    n = len(colours)
    if n < len(stated):
        return "fewer components"
    if n > len(stated):
        return "more components"
    if len(set(colours)) < n and any(colours.count(c) > 1 for c in stated):
        return "twin"
    if not all(facts.get(f"object{i}.colour", True) for i in range(len(stated))) or \
            any(c not in stated for c in colours):
        return "wrong colour"
    if not all(v for k, v in facts.items() if k.endswith((".shape", ".size"))):
        return "wrong shape/size"
    if not facts.get("relation", True):
        return "relation only"
    return "other"


CLASSES = ("correct", "fewer components", "more components", "twin", "wrong colour", "wrong shape/size",
           "relation only", "other")


def more_components_kind(colours: list[str], stated: tuple[str, ...]) -> str:
    """For images with extra components: 'duplicate' (an extra blob of a stated colour) or 'stray'."""
    counts = {c: colours.count(c) for c in set(colours)}
    return "duplicate" if any(counts.get(c, 0) > 1 for c in stated) else "stray"


def ranking_outcome(right_top: int, right_bottom: int) -> int:
    """+1 when the reward's top candidate has more judge facts right than its bottom one, -1 fewer, 0 tie."""
    return int(np.sign(right_top - right_bottom))


def bootstrap_ci(per_prompt: list[float], n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, 2.5%, 97.5%) of the mean over prompts, percentile bootstrap over prompts."""
    x = np.asarray([v for v in per_prompt if v is not None and np.isfinite(v)], dtype=np.float64)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (n, len(x)))].mean(1)
    return float(x.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def mean_or_nan(values) -> float:
    """Mean of the finite values (None and NaN skipped); NaN when there are none."""
    values = [float(v) for v in values if v is not None and np.isfinite(float(v))]
    return float(np.mean(values)) if values else float("nan")


# ----------------------------------------------------------------------------------------------------
# measurements


class Judged:
    """The judge's verdict on an image against a caption and its relation-swapped caption."""

    def __init__(self, img_chw: np.ndarray, prompt: str, swap: str) -> None:
        from rewardsds.world.judge import judge, parse_prompt

        v = judge(img_chw, prompt)
        self.facts = v.facts
        self.colours = [c.colour for c in v.components]
        self.right = sum(v.facts.values())
        self.all = v.all_correct
        self.rel_lenient = bool(v.facts.get("relation", False))  # the judge's fact (vacuous for twins)
        # both stated colours in two different components (the judge's assignment is one-to-one)
        self.distinct = bool(v.facts["object0.colour"] and v.facts["object1.colour"])
        self.rel = self.rel_lenient and self.distinct
        self.inv = bool(judge(img_chw, swap).facts.get("relation", False))
        self.layout = layout(self.rel_lenient, self.inv, self.distinct)
        self.objects_ok = all(v.facts[k] for k in OBJECT_FACTS) and v.facts["count"]
        self.stated = tuple(o.colour for o in parse_prompt(prompt).objects)
        self.cls = classify(v.facts, self.colours, self.stated)

    def summary(self) -> dict:
        return {"facts": self.facts, "accuracy": self.right / len(self.facts), "all": self.all,
                "layout": self.layout, "class": self.cls, "colours": self.colours, "distinct": self.distinct}


def class_table(judged: list[Judged]) -> dict:
    n = max(len(judged), 1)
    out = {c: sum(j.cls == c for j in judged) / n for c in CLASSES}
    more = [j for j in judged if j.cls == "more components"]
    out["more: duplicate share"] = (sum(more_components_kind(j.colours, j.stated) == "duplicate" for j in more)
                                    / len(more)) if more else None
    for k in ("right", "inverted", "none", "unreadable"):
        out[f"layout {k}"] = sum(j.layout == k for j in judged) / n
    out["judge relation fact (lenient)"] = sum(j.rel_lenient for j in judged) / n
    return out


def measure_prior(prior, prompts: list[str], samples: int, cfgs: list[float], seed: int) -> dict:
    import torch

    from rewardsds.sampling import sample

    out = {}
    for cfg in cfgs:
        g = torch.Generator().manual_seed(seed)
        per_prompt, judged_all, first = [], [], []
        for p in prompts:
            imgs = sample(prior, [p] * samples, steps=50, cfg=cfg, generator=g)
            first.append(imgs[:4])
            swap = swapped_caption(p)
            js = [Judged(im.numpy(), p, swap) for im in imgs]
            judged_all += js
            per_prompt.append({"prompt": p, "accuracy": mean_or_nan(j.right / len(j.facts) for j in js),
                               "all": mean_or_nan(j.all for j in js), "relation": mean_or_nan(j.rel for j in js),
                               "relation_lenient": mean_or_nan(j.rel_lenient for j in js),
                               "distinct": mean_or_nan(j.distinct for j in js),
                               "twin": mean_or_nan(j.cls == "twin" for j in js),
                               "relation_given_distinct": mean_or_nan(j.rel for j in js if j.distinct),
                               "objects_ok": mean_or_nan(j.objects_ok for j in js),
                               "relation_given_objects": mean_or_nan(j.rel for j in js if j.objects_ok),
                               "n_objects_ok": sum(j.objects_ok for j in js)})
        out[f"cfg {cfg:g}"] = {"per_prompt": per_prompt, "classes": class_table(judged_all),
                               "first": torch.cat(first), "judged": judged_all}
    return out


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


# ----------------------------------------------------------------------------------------------------
# aggregation and report


def by_bin(records: list[dict], field: str = "t") -> dict[str, list[dict]]:
    """Records grouped by t bin (field "t") or by optimisation-step bin (field "step")."""
    bins, which = (T_BINS, t_bin) if field == "t" else (STEP_BINS, step_bin)
    out = {name: [] for _, _, name in bins}
    for r in records:
        out[which(r[field])].append(r)
    return out


def candidate_stats(runs: list[dict]) -> dict:
    """Per t-bin (and over all reward steps): means over steps, pooled over runs."""
    recs = [r for run in runs for r in run["records"] if "rms" in r]
    out = {}
    for name, group in [("all", recs)] + list(by_bin(recs, "t").items()) + list(
            by_bin(recs, "step").items()):
        if not group:
            continue
        rank = [r["rank"] for r in group]
        rank_rel = [r["rank_rel"] for r in group if r["rank_rel"] is not None]
        agree = [a for r in group for a in r["clip_agrees_judge"]]
        split = [r for r in group if r["rel_split"]]
        out[name] = {
            "steps": len(group),
            "share of previews: judge relation fact (lenient)": mean_or_nan(r["frac_rel_lenient"] for r in group),
            "share of previews: both objects' colours distinct": mean_or_nan(r["frac_distinct"] for r in group),
            "share of previews: twin (one object twice)": mean_or_nan(r["frac_twin"] for r in group),
            "any preview with distinct colours": mean_or_nan(r["any_distinct"] for r in group),
            "any preview relation right (distinct objects)": mean_or_nan(r["any_rel"] for r in group),
            "share of previews relation right (distinct)": mean_or_nan(r["frac_rel"] for r in group),
            "any preview all facts right": mean_or_nan(r["any_all"] for r in group),
            "share of previews objects+count right": mean_or_nan(r["frac_objects_ok"] for r in group),
            "mean pairwise RMS": mean_or_nan(r["rms"] for r in group),
            "distinct fact-vectors (of N)": mean_or_nan(r["distinct"] for r in group),
            "previews keep the current layout": mean_or_nan(r["keep_layout"] for r in group),
            "steps where previews disagree on relation": len(split) / len(group),
            "top has relation right | disagree": mean_or_nan(r["top_rel_when_split"] for r in split),
            "  chance (random pick) | disagree": mean_or_nan(r["chance_rel_when_split"] for r in split),
            "steps where some previews show both objects, some not": mean_or_nan(
                r["top_distinct_when_mixed"] is not None for r in group),
            "top shows both objects | mixed": mean_or_nan(r["top_distinct_when_mixed"] for r in group),
            "  chance (random pick) | mixed": mean_or_nan(r["chance_distinct_when_mixed"] for r in group),
            "top more facts than bottom": float(np.mean([x > 0 for x in rank])),
            "top fewer facts than bottom": float(np.mean([x < 0 for x in rank])),
            "top = bottom facts": float(np.mean([x == 0 for x in rank])),
            "relation differs top/bottom: top right": (float(np.mean([x > 0 for x in rank_rel]))
                                                       if rank_rel else float("nan")),
            "relation differs top/bottom: n": len(rank_rel),
            "top preview: clip prefers true caption": mean_or_nan(r["top_clip_prefers_true"] for r in group),
            "clip agrees with judge on readable layouts": mean_or_nan(agree),  # distinct objects, right/inverted
            "  readable previews": len(agree),
            "|clip(true) - clip(swapped)| on previews": mean_or_nan(r["gap_true_swap"] for r in group),
            "reward spread (max - min) of the N": mean_or_nan(r["reward_spread"] for r in group),
        }
    return out


def final_stats(runs: list[dict]) -> dict:
    per_prompt = {}
    for r in runs:
        per_prompt.setdefault(r["prompt"], []).append(r)
    acc = [mean_or_nan(x["final"]["accuracy"] for x in rs) for rs in per_prompt.values()]
    allf = [mean_or_nan(x["final"]["all"] for x in rs) for rs in per_prompt.values()]
    rel = [mean_or_nan(x["final"]["layout"] == "right" for x in rs) for rs in per_prompt.values()]
    classes = {c: mean_or_nan(x["final"]["class"] == c for x in runs) for c in CLASSES}
    return {"n": len(runs), "judge accuracy": bootstrap_ci(acc), "all facts": bootstrap_ci(allf),
            "relation right (distinct objects)": bootstrap_ci(rel),
            "layout": {k: mean_or_nan(x["final"]["layout"] == k for x in runs)
                       for k in ("right", "inverted", "none", "unreadable")},
            "judge relation fact (lenient)": mean_or_nan(x["final"]["facts"].get("relation") for x in runs),
            "classes": classes,
            "world-clip": mean_or_nan(x["final_clip"] for x in runs),
            "world-clip(true) > world-clip(swapped)": mean_or_nan(x["final_clip"] > x["final_clip_swap"] for x in runs),
            "lock-in step (last layout change)": mean_or_nan(x["lock_in_step"] for x in runs),
            "layout changes per run": mean_or_nan(x["layout_changes"] for x in runs),
            "layout right at step": {s: mean_or_nan(x["layout_at"].get(s) == "right" for x in runs)
                                     for s in (10, 25, 50, 100)},
            "seconds per run": mean_or_nan(x["seconds"] for x in runs)}


def fmt(x) -> str:
    if isinstance(x, tuple):
        return f"{x[0]:.3f} [{x[1]:.3f}, {x[2]:.3f}]"
    if isinstance(x, float):
        return "n/a" if not np.isfinite(x) else f"{x:.3f}"
    return str(x)


def table(rows: dict[str, dict], cols: list[str]) -> str:
    keys = list(dict.fromkeys(k for c in cols if c in rows for k in rows[c]))
    w = max(len(k) for k in keys) + 2
    cells = {c: [fmt(rows[c].get(k, "")) for k in keys] for c in cols}
    cw = {c: max(len(c), *(len(x) for x in cells[c])) + 2 for c in cols}
    lines = [" " * w + "".join(f"{c:>{cw[c]}s}" for c in cols)]
    for i, k in enumerate(keys):
        lines.append(f"{k:<{w}s}" + "".join(f"{cells[c][i]:>{cw[c]}s}" for c in cols))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=Path, default=ROOT / "benchmarks" / "world_prompts.txt")
    ap.add_argument("--every", type=int, default=4, help="take every n-th relational prompt")
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--k", type=int, default=8, help="number of relational prompts")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--methods", nargs="+", default=["sds", "reward-sds"])
    ap.add_argument("--oracle", action="store_true", help="also RewardSDS with the judge as its reward")
    ap.add_argument("--prior-samples", type=int, default=8, help="DDIM samples per prompt")
    ap.add_argument("--prior-cfgs", type=float, nargs="+", default=[4.0])
    ap.add_argument("--renders", type=int, default=8, help="clean renders per prompt for the reward check")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "relations_diagnosis")
    ap.add_argument("--prior", type=Path, default=None,
                    help="a world prior folder to diagnose instead of the shipped one (e.g. a fine-tuned prior)")
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                    help="prior: section 1; renders: world-clip on renders (3b); runs: the distillation runs (2-4)")
    ap.add_argument("--tag", default="", help="suffix of the report/diagnosis file names (report{tag}.txt)")
    ap.add_argument("--records", type=Path, default=None,
                    help="also write every step's measurements (JSON lines, one per run; ~1 MB) here")
    args = ap.parse_args()

    import torch

    from rewardsds import media
    from rewardsds.priors.diffusers_prior import DiffusersPrior
    from rewardsds.rewards.factory import load_reward
    from rewardsds.world.paths import prior_dir

    torch.set_num_threads(1)
    t_start = time.time()
    prompts = relation_prompts(args.prompts, args.every, args.k, args.offset)
    prior = DiffusersPrior.from_pretrained(str(args.prior or prior_dir()))
    clip = load_reward("world-clip")
    args.out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def say(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    say(f"relations diagnosis: {len(prompts)} prompts x seeds {args.seeds}, {args.steps} steps, "
        f"methods {args.methods}{' + oracle' if args.oracle else ''}")
    for p in prompts:
        say(f"  {p}   (swapped: {swapped_caption(p)})")

    # 1. prior
    t0 = time.time()
    pri, prior_rows, clean, cand, fin = {}, {}, None, {}, {}
    if "prior" in args.parts:
        pri = measure_prior(prior, prompts, args.prior_samples, args.prior_cfgs, seed=1234)
        say(f"\n== 1. prior: DDIM 50 steps, {args.prior_samples} samples per prompt ({time.time() - t0:.0f} s)")
    for name, f in pri.items():
        pp = f["per_prompt"]
        prior_rows[f"prior {name}"] = {
            "judge accuracy": bootstrap_ci([x["accuracy"] for x in pp]),
            "all facts": bootstrap_ci([x["all"] for x in pp]),
            "judge relation fact (lenient)": bootstrap_ci([x["relation_lenient"] for x in pp]),
            "relation right (distinct objects)": bootstrap_ci([x["relation"] for x in pp]),
            "both colours distinct": bootstrap_ci([x["distinct"] for x in pp]),
            "twin (one object twice)": bootstrap_ci([x["twin"] for x in pp]),
            "relation | distinct (pooled)": mean_or_nan(j.rel for j in f["judged"] if j.distinct),
            "objects+count right": bootstrap_ci([x["objects_ok"] for x in pp]),
            "relation | objects right (pooled)": mean_or_nan(j.rel for j in f["judged"] if j.objects_ok),
            "  samples with objects right": sum(x["n_objects_ok"] for x in pp)}
        media.save_png(args.out / f"prior_samples_{name.replace(' ', '')}.png",
                       media.grid(media.to_uint8(f["first"], 4), cols=8))
    if prior_rows:
        say(table(prior_rows, list(prior_rows)))
    if "renders" in args.parts:
        clean = report_renders(clip, prompts, args.renders, say)
    methods = list(args.methods) + (["oracle"] if args.oracle else [])
    runs: dict[str, list[dict]] = {m: [] for m in methods} if "runs" in args.parts else {}
    if runs:
        cand, fin = report_runs(prior, clip, prompts, methods, runs, pri, args, t_start, say)
    say(f"\ntotal {time.time() - t_start:.0f} s")

    strip = {m: [{k: v for k, v in r.items() if k not in ("records", "final_image")} for r in rs]
             for m, rs in runs.items()}
    data = {"args": {k: str(v) for k, v in vars(args).items()}, "prompts": prompts,
            "prior": {k: {"per_prompt": v["per_prompt"], "classes": v["classes"]} for k, v in pri.items()},
            "prior_summary": prior_rows, "clean_renders": clean, "candidates": cand, "final": fin, "runs": strip,
            "seconds": round(time.time() - t_start, 1)}
    media.save_json(args.out / f"diagnosis{args.tag}.json", json.loads(json.dumps(data, default=str)))
    media.save_text(args.out / f"report{args.tag}.txt", "\n".join(lines) + "\n")
    if args.records is not None:
        media.save_text(args.records, "".join(json.dumps({"prompt": r["prompt"], "method": m, "seed": r["seed"],
                                                          "records": r["records"]}) + "\n"
                                              for m, rs in runs.items() for r in rs))


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


def report_runs(prior, clip, prompts, methods, runs, pri, args, t_start, say):
    import torch

    from rewardsds import media

    oracle = oracle_reward(clip) if args.oracle else None
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for p in prompts:
                for m in methods:
                    method, rm = ("reward-sds", oracle) if m == "oracle" else (m, clip)
                    r = measure_run(prior, clip, rm, p, method, seed, args.steps, Path(tmp))
                    runs[m].append(r)
                    print(f"  [{time.time() - t_start:6.0f} s] {m:10s} seed {seed} {p!r}: judge "
                          f"{r['final']['accuracy']:.2f} layout {r['final']['layout']:8s} {r['final']['class']} "
                          f"({r['seconds']} s)", flush=True)

    say("\n== 2/3. candidates and reward on the reward steps (pooled over runs; rows by t, then by step)")
    cand = {m: candidate_stats(rs) for m, rs in runs.items() if m != "sds"}
    for m, cs in cand.items():
        say(f"-- {m}")
        say(table(cs, list(cs)))

    say("\n== 4. final images (mean [95% bootstrap CI over prompts] where shown)")
    fin = {m: final_stats(rs) for m, rs in runs.items()}
    flat = {}
    for m, f in fin.items():
        row = {k: v for k, v in f.items() if not isinstance(v, dict)}
        row.update({f"class: {c}": v for c, v in f["classes"].items()})
        row.update({f"layout {k}": v for k, v in f["layout"].items()})
        row.update({f"layout right at step {s}": v for s, v in f["layout right at step"].items()})
        flat[m] = row
    say(table(flat, list(flat)))
    for k in pri:
        say(f"prior {k} failure classes: " + ", ".join(f"{c} {fmt(v)}" for c, v in pri[k]["classes"].items()))

    say("\nper prompt (final judge accuracy / layout):")
    for i, p in enumerate(prompts):
        cells = []
        for m in methods:
            rs = [r for r in runs[m] if r["prompt"] == p]
            cells.append(f"{m} " + " ".join(f"{r['final']['accuracy']:.2f}/{r['final']['layout'][:3]}" for r in rs))
        head = f"  {p:48s}"
        if pri:
            pp = pri[next(iter(pri))]["per_prompt"][i]
            head += f" prior acc {pp['accuracy']:.2f} rel {pp['relation']:.2f}"
        say(head + " | " + " | ".join(cells))
    imgs = torch.stack([r["final_image"] for m in methods for r in runs[m]])
    media.save_png(args.out / f"final_images{args.tag}.png", media.grid(media.to_uint8(imgs, 4), cols=len(prompts)))
    say(f"(final_images{args.tag}.png: rows = {', '.join(methods)}{' per seed' if len(args.seeds) > 1 else ''}; "
        f"columns = prompts)")
    return cand, fin


if __name__ == "__main__":
    sys.exit(main())
