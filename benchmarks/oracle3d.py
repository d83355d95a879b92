"""The view reader as RewardSDS's reward: the oracle control of the 3D table.

    python benchmarks/table3d.py --methods reward-sds --seeds 0 --out out/t3_oracle \\
        --reward "benchmarks.oracle3d:facts_read_right + 0.001*world3d-clip"

Why: on the 3D table RewardSDS's margin over SDS sits inside its CI at the defaults. RewardSDS needs two
things, a reward that ranks the N candidates right and candidates that differ in what is judged; an oracle
reward separates them. If RewardSDS with the oracle beats SDS, the 3D CLIP's ranking is what holds it back
(its gate: 0.78 against 0.90); if it does not, the candidates of one step do not differ enough in what the
judge reads for any ranking to help.

The oracle reads each candidate view (the prior's x0 estimate, 32x32) with `world3d.read.read_view`, the
prior gate's 2D reader, against that view's caption (gen3d's reward prompts carry the view suffix on the 3D
world priors, `--reward-view-words`) and scores the share of its facts read right; the loop averages a
candidate's views as it does for any reward. It asks only what one view shows (left/right on front and back
views, on top of on level views, never in front of / behind), so it is an oracle of the view reader, not of
judge3d. Its scores are ties in steps of a fact; 0.001 x world3d-clip (CLIPScore x100, so 0.02-0.04) breaks
them without ever outweighing a fact, as the 2D oracle of `benchmarks/relations` does.

A control, not a reward to ship: it reads the answer from the world's own renderer, which no real prior has.

    python benchmarks/oracle3d.py out/t3_oracle

prints, from the oracle runs' log.jsonl (rewards [views, candidates] on each reward step), how often the N
candidates of a step differ at all in what the reader reads: the share of reward steps where the best
candidate reads at least one fact more than the worst on some view, and the mean spread in facts a view.
When they rarely differ, no reward can rank them usefully, however good. It also splits each logged score
back into its two terms (a view's facts-right share is a multiple of 1/k, k the facts its caption and view
ask; 0.001 x CLIPScore <= 0.1 < 1/6 is the rest) and asks how the 3D CLIP alone would have ranked the very
same candidates: on the steps where their facts differ, the share of the oracle's contrast it recovers,
(facts of CLIP's top half - facts of its bottom half) / (the same for the oracle's own ranking): 1 is the
oracle, 0 a random ranking, below 0 a ranking against the facts.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path

import numpy as np

FACT_GAP = 0.02
"""a candidate's score is its views' mean of facts-right shares (steps of 1/6 to 1/2 a view) plus 0.001 x
CLIPScore (under 0.01 apart between candidates): a spread above this is at least one fact on one view of four"""


def facts_read_right(images, prompts):
    """Share of the facts `read_view` reads right in each image ([B,3,H,W] in [0,1]) against its caption."""
    import torch

    from rewardsds.world3d.read import read_view

    arr = images.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    return torch.tensor([read_view(np.ascontiguousarray(im), p).accuracy for im, p in zip(arr, prompts)],
                        dtype=torch.float32)


def reward_steps(log: Path):
    """The records of a run's log.jsonl that scored candidates (reward steps)."""
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("rewards"):
            yield rec


def spread(log: Path) -> dict:
    """Over one run's reward steps: the share where candidates differ in facts read, and the mean spread
    (best minus worst candidate, in facts-right share of a view, averaged over the views)."""
    gaps = []
    for rec in reward_steps(log):
        per_candidate = np.asarray(rec["rewards"], dtype=np.float64).mean(0)  # [views, N] -> [N]
        gaps.append(float(per_candidate.max() - per_candidate.min()))
    gaps = np.asarray(gaps)
    return {"reward_steps": len(gaps), "differ": float((gaps > FACT_GAP).mean()) if len(gaps) else None,
            "mean_spread": float(gaps.mean()) if len(gaps) else None}


@cache
def facts_asked(prompt: str) -> int:
    """How many facts `read_view` asks of a caption seen from its suffix's view (any image: the facts asked
    depend on the caption and the view only)."""
    from rewardsds.world3d.read import read_view

    return len(read_view(np.zeros((8, 8, 3), np.float32), prompt).facts)


def split_terms(rewards, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A logged oracle score matrix [views, N] -> (facts-right shares, CLIPScores), each [views, N]."""
    r = np.asarray(rewards, dtype=np.float64)
    k = np.array([facts_asked(p) for p in prompts], dtype=np.float64)[:, None]
    facts = np.floor(r * k + 1e-4) / k
    return facts, (r - facts) * 1000.0


def contrast(order: np.ndarray, facts: np.ndarray) -> float:
    """Mean facts of the top half of `order` (best first) minus the mean of its bottom half."""
    half = len(order) // 2
    return float(facts[order[:half]].mean() - facts[order[-half:]].mean())


def agreement(log: Path) -> dict:
    """Over one oracle run's reward steps whose candidates differ in facts: the sums of the contrast by
    CLIP's ranking and by the oracle's, and how often CLIP's best candidate is one of the oracle's best."""
    clip_sum = oracle_sum = hits = chance = n = 0.0
    for rec in reward_steps(log):
        if not rec.get("reward_prompts"):
            continue
        facts, clip = split_terms(rec["rewards"], rec["reward_prompts"])
        f, c = facts.mean(0), clip.mean(0)  # a candidate's score: the mean over its views
        if f.max() - f.min() < 1e-6:
            continue
        n += 1
        clip_sum += contrast(np.argsort(-c, kind="stable"), f)
        oracle_sum += contrast(np.argsort(-f, kind="stable"), f)
        best = np.isclose(f, f.max())
        hits += float(best[int(np.argmax(c))])
        chance += float(best.mean())
    return {"steps": int(n), "clip_contrast": clip_sum, "oracle_contrast": oracle_sum, "top1": hits, "chance": chance}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not (Path(argv[0]) / "reward-sds").is_dir():
        print("usage: python benchmarks/oracle3d.py OUT   (OUT/reward-sds/*/log.jsonl of an oracle table)",
              file=sys.stderr)
        return 2
    logs = {d.name: d / "log.jsonl" for d in sorted((Path(argv[0]) / "reward-sds").iterdir())
            if (d / "log.jsonl").is_file()}
    rows = [(name, spread(log)) for name, log in logs.items()]
    agree = {name: agreement(log) for name, log in logs.items()}
    for name, r in rows:
        print(f"{name:60s} reward steps {r['reward_steps']:4d}  candidates differ {r['differ']:.2f}  "
              f"mean spread {r['mean_spread']:.3f}")
    from rewardsds.world3d.scenes import parse_caption

    objects = {n: len(parse_caption(n.rsplit("_s", 1)[0].replace("_", " ")).objects) for n, _ in rows}
    for label, keep in (("one object", lambda k: k == 1), ("two objects", lambda k: k == 2), ("all", lambda k: True)):
        sel = [r for n, r in rows if keep(objects[n]) and r["reward_steps"]]
        if sel:
            print(f"{label:12s} runs {len(sel):3d}  candidates differ {np.mean([r['differ'] for r in sel]):.2f}"
                  f"  mean spread {np.mean([r['mean_spread'] for r in sel]):.3f}")
        a = [g for n, g in agree.items() if keep(objects[n]) and g["steps"]]
        if a:
            tot = {k: sum(g[k] for g in a) for k in a[0]}
            print(f"{'':12s} 3D CLIP on the same candidates ({tot['steps']} steps whose facts differ): recovers "
                  f"{tot['clip_contrast'] / tot['oracle_contrast']:+.2f} of the oracle's contrast; its best is "
                  f"one of the oracle's best in {tot['top1'] / tot['steps']:.2f} "
                  f"(chance {tot['chance'] / tot['steps']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
