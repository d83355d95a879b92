"""Section 1 of the relations diagnosis: DDIM samples of the world prior on the relational prompts, judged."""

from __future__ import annotations

from .judged import Judged, class_table
from .measures import mean_or_nan, swapped_caption


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
