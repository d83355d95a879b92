"""The aggregate (`aggregate.aggregate`'s dict) as text: the plain tables `rewardsds eval` prints and a
Markdown table in the layout of the paper's Tables 1/5 (one row per variant, one column per metric),
written beside eval.json so a README can quote the numbers exactly as computed."""

from __future__ import annotations


def format_tables(agg: dict) -> str:
    """One plain-text block per metric: mean [95% CI] and the paired difference against the baseline."""
    lines = []
    base = agg["baseline"]
    for metric, rows in agg["metrics"].items():
        lines.append(f"\n{metric}  (mean [95% CI]; diff = paired difference vs {base or 'no baseline'})")
        width = max([len(r["variant"]) for r in rows] + [7])
        for r in rows:
            d = r["diff"]
            diff = f"  diff {d['mean']:+.3g} [{d['lo']:+.3g}, {d['hi']:+.3g}]" if d else ""
            lines.append(f"  {r['variant']:<{width}}  n={r['n']:<4d} {r['mean']:.4g} [{r['lo']:.4g}, "
                         f"{r['hi']:.4g}]{diff}")
    if agg["cost"]:
        lines.append("\ncost per image (mean)")
        for r in agg["cost"]:
            sec, calls = r["seconds"], r["prior_calls"]
            lines.append(f"  {r['variant']:<30}  {sec['mean'] if sec else float('nan'):8.2f} s  "
                         f"{calls['mean'] if calls else float('nan'):8.0f} prior calls")
    return "\n".join(lines).lstrip("\n")


def _num(x: float) -> str:
    """3 significant digits, at most 2 decimals (scores x100 and aesthetic 1-10 both read well)."""
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}" if abs(x) < 100 else f"{x:.0f}"


def signed(x: float, digits: int | None = None) -> str:
    """x with its sign (U+2212 minus, none for 0): 3 significant digits, or ``digits`` decimals."""
    if digits is not None:
        x = round(x, digits)  # so that -0.004 at 2 decimals reads 0.00, not -0.00
    return ("+" if x > 0 else "−" if x < 0 else "") + (_num(abs(x)) if digits is None else f"{abs(x):.{digits}f}")


def delta_text(d: dict, digits: int | None = None) -> str:
    """A paired difference as '+1.2 [+0.3, +2.0]'."""
    return f"{signed(d['mean'], digits)} [{signed(d['lo'], digits)}, {signed(d['hi'], digits)}]"


def excludes_zero(d: dict) -> bool:
    return d["lo"] > 0 or d["hi"] < 0


def format_markdown(agg: dict) -> str:
    """A Markdown table: rows = variants, columns = metrics as ``mean [lo, hi]`` with the paired
    difference ``Δ d [lo, hi]`` under it (bold when its CI excludes 0), then seconds and prior calls per
    image. Minus signs are U+2212 so the columns do not jump between + and - in proportional fonts."""
    metrics = list(agg["metrics"])
    variants = list(dict.fromkeys([r["variant"] for m in metrics for r in agg["metrics"][m]]
                                  + [r["variant"] for r in agg["cost"]]))
    cells: dict[tuple[str, str], str] = {}
    n_of: dict[str, int] = {}
    for m in metrics:
        for r in agg["metrics"][m]:
            text = f"{_num(r['mean'])} [{_num(r['lo'])}, {_num(r['hi'])}]".replace("-", "−")
            d = r["diff"]
            if d:
                delta = f"Δ {delta_text(d)}"
                text += "<br>" + (f"**{delta}**" if excludes_zero(d) else delta)
            cells[(r["variant"], m)] = text
            n_of[r["variant"]] = max(n_of.get(r["variant"], 0), r["n"])
    cost = {r["variant"]: r for r in agg["cost"]}
    header = ["variant", "n", *metrics, "s / image", "prior calls / image"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for v in variants:
        c = cost.get(v, {})
        sec = f"{c['seconds']['mean']:.1f}" if c.get("seconds") else "–"
        calls = f"{c['prior_calls']['mean']:.0f}" if c.get("prior_calls") else "–"
        row = [v.replace("|", "\\|"), str(n_of.get(v, "–")), *(cells.get((v, m), "–") for m in metrics), sec, calls]
        lines.append("| " + " | ".join(row) + " |")
    base = agg["baseline"]
    note = (f"Mean [95% bootstrap CI]; Δ = paired difference against `{base}` over the same (prompt, seed), "
            "bold when its CI excludes 0.") if base else "Mean [95% bootstrap CI]."
    return "\n".join(lines) + "\n\n" + note + "\n"
