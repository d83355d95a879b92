"""Write the 3D table's prompt list (benchmarks/world3d_prompts.txt), deterministically.

    python benchmarks/make_world3d_prompts.py [--out benchmarks/world3d_prompts.txt] [--seed 0]

Two groups, in the 3D world grammar's canonical wording, each prompt checked by `parse_caption`:

1. 8 single objects: trained colour-shape pairs drawn without replacement ("a red cube");
2. 16 two-object scenes of different colours: 3 each of "to the left of", "to the right of",
   "in front of", "behind" (depth relations: a single view cannot show them, the field must) and 4 of
   "on top of" (the bottom object flat-topped, as in the world's scenes).

24 prompts in all (the 3D table's minimum); held-out pairs are left out, so every prompt is one the
world's models could have seen in training. The same seed always gives the same file.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewardsds.world3d.scenes import FLAT_TOPPED, allowed_pairs, parse_caption  # noqa: E402

SINGLES = 8
PER_RELATION = {"to the left of": 3, "to the right of": 3, "in front of": 3, "behind": 3, "on top of": 4}


def prompts(seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    pairs = sorted(allowed_pairs("train"))
    out = [f"a {c} {s}" for c, s in rng.sample(pairs, SINGLES)]
    for relation, n in PER_RELATION.items():
        seen: set[str] = set()
        while len(seen) < n:
            c0, s0 = rng.choice(pairs)
            second = [p for p in pairs if p[0] != c0 and (relation != "on top of" or p[1] in FLAT_TOPPED)]
            c1, s1 = rng.choice(second)
            text = f"a {c0} {s0} {relation} a {c1} {s1}"
            if text not in seen:
                seen.add(text)
                out.append(text)
    for text in out:  # every prompt reads back as the scene it names
        parse_caption(text)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "world3d_prompts.txt")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text("\n".join(prompts(args.seed)) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
