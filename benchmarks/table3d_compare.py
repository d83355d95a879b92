"""Compare two 3D tables run on the same prompts and seeds (e.g. Gaussians vs field, the multi-view prior vs
the view-aware prior): per method, the paired difference A - B per (prompt, seed) with its 95% CI over
prompts, for judge3d facts, every fact right, duplicated objects and seconds per asset.

    python benchmarks/table3d_compare.py out/table3d_gaussians out/table3d [--methods sds reward-sds]

Reads each folder's rows.json, written by `benchmarks/table3d.py` (run `--report-only` on a folder first if
its rows.json is older than its runs). Only the runs finished in both tables are paired; n says how many.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # table3d.py beside this file: its row categories

KEYS = (("accuracy", "judge3d facts", 100.0, "points"), ("all_correct", "every fact right", 100.0, "points"),
        ("duplicated", "duplicated", 100.0, "points"), ("seconds", "seconds per asset", 1.0, "s"))


def load_rows(folder: Path) -> list[dict]:
    path = folder / "rows.json"
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"cannot read {path}: {e} (run benchmarks/table3d.py --report-only --out {folder} first)")
    if not isinstance(rows, list):
        sys.exit(f"{path} is not a list of rows")
    return rows


def compare(a_rows: list[dict], b_rows: list[dict], methods: list[str], a_name: str, b_name: str) -> list[str]:
    from table3d import CATEGORIES

    from rewardsds.eval.aggregate import paired_difference

    lines = []
    for m in methods:
        for cat, keep in CATEGORIES.items():
            a = [r for r in a_rows if r["method"] == m and keep(r)]
            b = [r for r in b_rows if r["method"] == m and keep(r)]
            for key, label, scale, unit in KEYS:
                d = paired_difference({(r["prompt"], r["seed"]): r[key] for r in a},
                                      {(r["prompt"], r["seed"]): r[key] for r in b})
                if d is None:
                    continue
                if key == "accuracy":
                    lines += ["", f"{m}, {cat}: {a_name} - {b_name} (n = {d.n} pairs)"]
                lines.append(f"- {label}: {scale * d.mean:+.1f} [{scale * d.lo:+.1f}, {scale * d.hi:+.1f}] {unit}")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="the table out folder of the variant (A)")
    ap.add_argument("b", type=Path, help="the table out folder of the reference (B)")
    ap.add_argument("--methods", nargs="+", default=["sds", "reward-sds"])
    args = ap.parse_args(argv)
    lines = compare(load_rows(args.a), load_rows(args.b), args.methods, args.a.name, args.b.name)
    if not lines:
        sys.exit(f"no (prompt, seed) finished in both {args.a} and {args.b} for {', '.join(args.methods)}")
    print("\n".join(lines).lstrip("\n"))


if __name__ == "__main__":
    main()
