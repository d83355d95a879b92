"""Write the world benchmark's prompt list (benchmarks/world_prompts.txt), deterministically.

    python benchmarks/make_world_prompts.py [--out benchmarks/world_prompts.txt] [--seed 0]

Three groups, all in the world grammar's canonical wording (`Scene.caption(rng=None)`), so the
judge parses every prompt:

1. every trained colour-shape pair alone ("a red circle"): 6 x 4 - 3 held out = 21 prompts;
2. two trained objects of different colours under each spatial relation (left of, right of, above,
   below): 8 per relation = 32 prompts;
3. the held-out colour-shape pairs of `scenes.HELD_OUT` (never in any training image): each alone
   and first of a pair under three relations = 3 x 4 = 12 prompts.

65 prompts in all. The same seed always gives the same file (random.Random, sorted inputs).
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewardsds.world.scenes import COLOURS, HELD_OUT, SHAPES, Obj, Scene  # noqa: E402

SPATIAL = ("left of", "right of", "above", "below")
PER_RELATION = 8


@dataclass
class Args:
    out: Path = ROOT / "benchmarks" / "world_prompts.txt"
    seed: int = 0


def _caption(*pairs: tuple[str, str], relation: str | None = None) -> str:
    # positions and sizes do not enter the caption; only colour, shape and relation do
    return Scene(tuple(Obj(c, s, "big") for c, s in pairs), relation).caption()


def make_prompts(seed: int = 0) -> list[tuple[str, list[str]]]:
    """(group title, prompts) for the three groups above."""
    rng = random.Random(seed)
    train = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELD_OUT]
    singles = [_caption(p) for p in train]
    pairs: list[str] = []
    for relation in SPATIAL:
        chosen: set[tuple] = set()
        while len(chosen) < PER_RELATION:
            a, b = rng.sample(train, 2)
            if a[0] != b[0]:  # different colours: each object is identified by its colour alone
                chosen.add((a, b))
        pairs += [_caption(a, b, relation=relation) for a, b in sorted(chosen)]
    held = []
    for pair in sorted(HELD_OUT):
        held.append(_caption(pair))
        partners = [p for p in train if p[0] != pair[0]]
        for relation in rng.sample(SPATIAL, 3):
            held.append(_caption(pair, rng.choice(partners), relation=relation))
    return [("single objects (trained colour-shape pairs)", singles),
            ("two objects, spatial relations", pairs),
            ("held-out colour-shape pairs (scenes.HELD_OUT): alone and in relations", held)]


def render(groups: list[tuple[str, list[str]]], seed: int) -> str:
    lines = [f"# The world benchmark's prompts: written by benchmarks/make_world_prompts.py --seed {seed}; "
             "do not edit by hand."]
    for title, prompts in groups:
        lines += ["", f"# {title}: {len(prompts)}", *prompts]
    return "\n".join(lines) + "\n"


def main(args: Args) -> Path:
    groups = make_prompts(args.seed)
    text = render(groups, args.seed)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {sum(len(p) for _, p in groups)} prompts")
    return args.out


if __name__ == "__main__":
    import tyro

    main(tyro.cli(Args))
