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
        width = max([len(r["variant"]) for r in agg["cost"]] + [30])
        for r in agg["cost"]:
            sec, calls = r["seconds"], r["prior_calls"]
            lines.append(f"  {r['variant']:<{width}}  {sec['mean'] if sec else float('nan'):8.2f} s  "
                         f"{calls['mean'] if calls else float('nan'):8.0f} prior calls")
    if agg.get("controls"):
        lines.append("\ncontrols (cost per image against the method they control for; gain = method - control, "
                     "paired)")
        for r in agg["controls"]:
            lines.append(f"  {r['variant']}  [{r['control']} of {r['of']}]: {cost_text(r, 'seconds')} s, "
                         f"{cost_text(r, 'prior_calls')} prior calls")
            gains = [f"{m} {d['mean']:+.3g} [{d['lo']:+.3g}, {d['hi']:+.3g}]" for m, d in r["gain"].items() if d]
            if gains:
                lines.append("    gain " + "; ".join(gains))
    return "\n".join(lines).lstrip("\n")


def cost_text(row: dict, field: str) -> str:
    """A control's cost against its method's: '24.1 vs 25.0 (×0.96)'."""
    a, z, ratio = row.get(field), row.get(f"of_{field}"), row.get(f"{field}_ratio")
    if a is None or z is None:
        return "–"
    digits = 1 if field == "seconds" else 0
    return f"{a:.{digits}f} vs {z:.{digits}f}" + (f" (×{ratio:.2f})" if ratio is not None else "")


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
    return "\n".join(lines) + "\n\n" + note + "\n" + control_markdown(agg, metrics)


def control_markdown(agg: dict, metrics: list[str]) -> str:
    """The controls against the method each controls for: cost per image of both (ratio control /
    method) and the paired gain of the method over the control per metric; '' when there are none."""
    rows = agg.get("controls") or []
    if not rows:
        return ""
    header = ["control", "for", "s / image (ratio)", "prior calls / image (ratio)", *(f"gain {m}" for m in metrics)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        gains = []
        for m in metrics:
            d = r["gain"].get(m)
            gains.append("–" if not d else f"**{delta_text(d)}**" if excludes_zero(d) else delta_text(d))
        cells = [r["variant"], r["of"], cost_text(r, "seconds"), cost_text(r, "prior_calls"), *gains]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return ("\n" + "\n".join(lines) + "\n\nControls: *equal time* = the plain method with its steps scaled so "
            "that its seconds per image match the method's (ratio ≈ 1 in seconds); *equal compute* = the same "
            "candidates, previews and reward calls with uniform weights (ratio ≈ 1 in prior calls). Gain = "
            "paired difference method − control with its 95% CI, bold when the CI excludes 0.\n")
