"""Split a world sweep's scores by prompt category: where does RewardSDS help, where not?

    python benchmarks/world_by_category.py out/world_tables/table1 [--baseline sds]
        [--prompts benchmarks/world_prompts.txt] [--metrics judge,judge-all,world-clip,world-aesthetic]

The categories are the prompt file's section comments ("# single objects (...): 21" -> "single
objects"); every prompt below a comment belongs to it. For each category: the same Markdown table as
`rewardsds eval` writes to eval.md (means with 95% bootstrap CIs over prompts, paired differences
against the baseline), from the scores `rewardsds eval` stored in the sweep. Writes by_category.md in
the sweep folder and prints it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewardsds.eval.aggregate import aggregate  # noqa: E402
from rewardsds.eval.metrics import load_units, open_store  # noqa: E402
from rewardsds.eval.tables import format_markdown  # noqa: E402
from rewardsds.media import save_text  # noqa: E402


def categories(prompts_file: Path) -> dict[str, str]:
    """prompt -> the section comment above it (its text up to '(' or ':')."""
    out, current = {}, "uncategorised"
    for line in prompts_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("#"):
            head = line.lstrip("#").split("(")[0].split(":")[0].strip()
            if head and not head.lower().startswith("the world benchmark"):
                current = head
        elif line:
            out[line] = current
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep_dir", type=Path)
    ap.add_argument("--prompts", type=Path, default=ROOT / "benchmarks" / "world_prompts.txt")
    ap.add_argument("--baseline", default="sds")
    ap.add_argument("--metrics", default="judge,judge-all,world-clip,world-aesthetic")
    args = ap.parse_args()
    cat = categories(args.prompts)
    with open_store(args.sweep_dir) as store:
        units, _ = load_units(store)
    metrics = args.metrics.split(",")
    parts = [f"Scores of {args.sweep_dir} by prompt category ({args.prompts.name}).\n"]
    for name in dict.fromkeys(cat.values()):
        group = [u for u in units if cat.get(u.prompt) == name]
        if not group:
            continue
        prompts = len({u.prompt for u in group})
        agg = aggregate(group, [m for m in metrics if any(m in u.scores for u in group)], baseline=args.baseline)
        parts.append(f"### {name} ({prompts} prompts)\n\n{format_markdown(agg)}")
    text = "\n".join(parts)
    save_text(args.sweep_dir / "by_category.md", text)
    print(text)


if __name__ == "__main__":
    main()
