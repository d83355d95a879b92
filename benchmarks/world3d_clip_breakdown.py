"""Where the 3D world CLIP misses: its hard-negative check split by relation and view class.

    python benchmarks/world3d_clip_breakdown.py [--clip rewardsds/world3d/weights/clip] [--n 300]

The same check as `python -m rewardsds.world3d.evaluate --parts clip` on the same scenes (seed 12345): fresh
renders from one random view, captions as the CLIP reads them (view words, or the camera's frame for a CLIP
trained on it), every hard negative in the same form, the true caption to beat them all. Counted per
(relation or "single", view class), and for each miss the kind of negative that won: the inverted relation,
the objects swapped, or an attribute edit.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = 12345
"""the gate's scenes (`world3d.negatives.hard_negative_scores`' default seed)"""
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch
    from transformers import AutoTokenizer, CLIPModel

    from rewardsds.render.cameras import view_label
    from rewardsds.world3d import paths
    from rewardsds.world3d.data import sample_views
    from rewardsds.world3d.negatives import hard_negative_scores
    from rewardsds.world3d.paths import clip_captions
    from rewardsds.world3d.scenes import parse_caption

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, default=paths.clip_dir())
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, tok = CLIPModel.from_pretrained(args.clip).eval(), AutoTokenizer.from_pretrained(args.clip)
    wins, total, misses = collections.Counter(), collections.Counter(), collections.Counter()
    camera = clip_captions(args.clip) == "camera-frame"  # as the gate captions for this CLIP
    az, el = sample_views(args.n, SEED)  # the cameras of hard_negative_scores' renders, in order
    for i, (sc, _, texts, s) in enumerate(hard_negative_scores(model, tok, args.n, seed=SEED, camera_frame=camera)):
        key = (sc.relation or "single", f"{view_label(float(el[i]), float(az[i]))} view")
        total[key] += 1
        if s[0] > s[1:].max():
            wins[key] += 1
            continue
        p0, pn = parse_caption(texts[0]), parse_caption(texts[1 + int(s[1:].argmax())])
        objs = [(o.colour, o.shape) for o in p0.objects]
        kind = ("relation" if p0.relation != pn.relation else
                "objects swapped" if objs[::-1] == [(o.colour, o.shape) for o in pn.objects] else "attribute")
        misses[(key[0], kind)] += 1
    where = args.clip.resolve()
    where = where.relative_to(ROOT) if where.is_relative_to(ROOT) else where
    print(f"hard-negative accuracy {sum(wins.values()) / args.n:.3f} over {args.n} renders ({where})")
    for group in ("single", "two objects"):
        keys = [k for k in total if (k[0] == "single") == (group == "single")]
        print(f"  {group:12s} {sum(wins[k] for k in keys)}/{sum(total[k] for k in keys)}")
    print("by (relation, view): right / renders")
    for k in sorted(total):
        print(f"  {k[0]:12s} {k[1]:14s} {wins[k]:3d} / {total[k]:3d}")
    print("misses by the winning negative's kind:")
    for (rel, kind), n in sorted(misses.items(), key=lambda x: -x[1]):
        print(f"  {rel:12s} {kind:16s} {n}")


if __name__ == "__main__":
    main()
