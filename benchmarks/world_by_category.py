"""Split a world sweep's scores by prompt category: where does RewardSDS help, where not?

    python benchmarks/world_by_category.py out/world_tables/table1 [--baseline sds]
        [--prompts benchmarks/world_prompts.txt] [--metrics judge,judge-all,world-clip,world-aesthetic]

The categories are the prompt file's section comments ("# single objects (...): 21" -> "single
objects"); every prompt below a comment belongs to it. For each category: the same Markdown table as
`rewardsds eval` writes to eval.md (means with 95% bootstrap CIs over prompts, paired differences
against the baseline), from the scores `rewardsds eval` stored in the sweep; first, one summary table
of the paired differences only (category x variant). Writes by_category.md in the sweep folder and
prints it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewardsds.eval.aggregate import aggregate  # noqa: E402
from rewardsds.eval.metrics import load_units, open_store  # noqa: E402
from rewardsds.eval.tables import delta_text, excludes_zero, format_markdown  # noqa: E402
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


def _delta(d: dict | None, digits: int) -> str:
    """'+1.2 [+0.3, +2.0]', bold when the CI excludes 0."""
    if d is None:
        return "–"
    return f"**{delta_text(d, digits)}**" if excludes_zero(d) else delta_text(d, digits)


def summary(groups: dict[str, dict], metrics: list[str]) -> str:
    """One row per (category, variant): the baseline's mean and each metric's paired difference."""
    lines = ["| category (prompts) | variant | " + " | ".join(f"Δ {m}" for m in metrics) + " |",
             "|---|---|" + "---|" * len(metrics)]
    for name, (agg, n_prompts) in groups.items():
        base = agg["baseline"]
        rows = {(m, r["variant"]): r for m in metrics for r in agg["metrics"].get(m, [])}
        base_means = ", ".join(f"{m} {rows[(m, base)]['mean']:.1f}" for m in metrics[:2] if (m, base) in rows)
        for v in dict.fromkeys(r["variant"] for rs in agg["metrics"].values() for r in rs):
            if v == base:
                continue
            cells = [_delta(rows[(m, v)]["diff"] if (m, v) in rows else None, 2 if "aesthetic" in m else 1)
                     for m in metrics]
            lines.append(f"| {name} ({n_prompts}); {base}: {base_means} | {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
    groups = {}
    for name in dict.fromkeys(cat.values()):
        group = [u for u in units if cat.get(u.prompt) == name]
        if group:
            agg = aggregate(group, [m for m in metrics if any(m in u.scores for u in group)], baseline=args.baseline)
            groups[name] = (agg, len({u.prompt for u in group}))
    parts = [f"Scores of {args.sweep_dir} by prompt category ({args.prompts.name}); paired differences "
             f"against {args.baseline} with 95% bootstrap CIs, bold when the CI excludes 0.\n",
             summary(groups, metrics)]
    parts += [f"### {name} ({n} prompts)\n\n{format_markdown(agg)}" for name, (agg, n) in groups.items()]
    text = "\n".join(parts)
    save_text(args.sweep_dir / "by_category.md", text)
    print(text)


if __name__ == "__main__":
    main()
