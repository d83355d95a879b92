"""Aggregation of the relations diagnosis's runs: the candidates' measures binned by t and by step, and the
final images' statistics."""

from __future__ import annotations

import numpy as np

from .measures import CLASSES, STEP_BINS, T_BINS, bootstrap_ci, mean_or_nan, step_bin, t_bin


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
