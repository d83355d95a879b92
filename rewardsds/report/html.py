"""`rewardsds report`: one self-contained HTML page about a sweep.

Everything is inline (images as base64 PNG data URLs, charts as SVG from `svg`), no scripts and no
network, so the file can be mailed or archived as it is. Sections, like the paper's tables:

1. one table per metric: variant rows, mean +- 95% bootstrap CI, paired difference to the baseline
   (Tables 1/2/5 of RewardSDS), the cost per image (seconds, prior network calls), and the controls
   (equal compute, equal time) against the method each controls for;
2. cost vs quality: one scatter per metric, x = cost per image, y = mean with its CI;
3. curves over the optimisation steps from every run's log.jsonl: the mean candidate reward
   (mean of ``rewards`` [B][N]) on reward steps, and the gradient norm, averaged over runs per step;
4. a gallery: prompt rows x variant columns, each image with its scores underneath;
5. the runs that failed, with their error.

All user text (prompts, labels, errors) goes through html.escape.
"""

from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from ..eval.aggregate import aggregate
from ..eval.metrics import IMAGE, load_units, open_store
from ..eval.tables import cost_text
from ..media import save_text
from . import svg
from .config import check_report

if TYPE_CHECKING:
    from .config import ReportConfig

MAX_CURVE_POINTS = 300
COST_LABEL = {"prior_calls": "prior calls per image", "seconds": "seconds per image"}


@dataclass
class ReportData:
    title: str
    sweep_dir: str
    counts: dict[str, int]
    agg: dict
    cost_axis: str = "seconds"
    settings: dict[str, str] = field(default_factory=dict)
    curves: dict[str, dict[str, tuple[list[float], list[float]]]] = field(default_factory=dict)
    gallery_prompts: list[str] = field(default_factory=list)
    gallery_variants: list[str] = field(default_factory=list)
    gallery: dict[tuple[str, str], tuple[str | None, dict[str, float]]] = field(default_factory=dict)
    gallery_seed: int | None = None
    failed: list[dict] = field(default_factory=list)


# --- collecting ---------------------------------------------------------------------------------


def read_curves(log_path: Path) -> dict[str, dict[int, float]]:
    """step -> mean candidate reward (reward steps only) and step -> grad_norm, from one log.jsonl."""
    out: dict[str, dict[int, float]] = {"reward": {}, "grad_norm": {}}
    try:
        lines = log_path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill: the rest of the log is still good
        step = rec.get("step")
        if not isinstance(step, int):
            continue
        rewards = rec.get("rewards")
        if rewards:
            flat = [float(v) for row in rewards for v in row]
            out["reward"][step] = sum(flat) / len(flat)
        if rec.get("grad_norm") is not None:
            out["grad_norm"][step] = float(rec["grad_norm"])
    return out


def average_curves(per_run: list[dict[int, float]], max_points: int = MAX_CURVE_POINTS) -> tuple[list, list]:
    """Mean over runs per step, then bin-averaged to at most max_points points."""
    sums: dict[int, list[float]] = {}
    for curve in per_run:
        for step, v in curve.items():
            if math.isfinite(v):
                sums.setdefault(step, []).append(v)
    steps = sorted(sums)
    ys = [sum(sums[s]) / len(sums[s]) for s in steps]
    if len(steps) > max_points:
        k = math.ceil(len(steps) / max_points)
        steps = [sum(steps[i:i + k]) / len(steps[i:i + k]) for i in range(0, len(steps), k)]
        ys = [sum(ys[i:i + k]) / len(ys[i:i + k]) for i in range(0, len(ys), k)]
    return [float(s) for s in steps], ys


def collect(cfg: ReportConfig) -> ReportData:
    sweep_dir = Path(cfg.sweep_dir)
    with open_store(sweep_dir) as store:
        counts = store.counts()
        runs = store.runs("done")
        failed = [{"prompt": r.prompt, "method": r.method, "seed": r.seed, "attempts": r.attempts,
                   "error": (r.error or "").strip()} for r in store.runs("failed")]
        units, labels = load_units(store)
    if not runs and not failed:
        raise UserError(f"no finished runs in {str(sweep_dir)!r} yet; run `rewardsds sweep` first")
    wanted = [m.strip() for m in cfg.metrics.split(",") if m.strip()] or None
    agg = aggregate(units, wanted, baseline=cfg.baseline, b=cfg.bootstrap, seed=cfg.ci_seed)
    agg["metrics"] = {m: rows for m, rows in agg["metrics"].items() if rows}
    settings = {}
    for key in ("prior", "steps", "reward", "n_noises", "denoise_steps", "reward_steps", "weighting"):
        vals = sorted({str(r.config[key]) for r in runs if key in r.config})
        if vals:
            settings[key] = ", ".join(vals)
    data = ReportData(title=cfg.title or f"Sweep report: {sweep_dir.name}", sweep_dir=str(sweep_dir),
                      counts=counts, agg=agg, cost_axis=cfg.cost, settings=settings, failed=failed)
    per_variant: dict[str, dict[str, list]] = {}
    for r in runs:
        c = read_curves(sweep_dir / r.run_dir / "log.jsonl")
        for name, curve in c.items():
            per_variant.setdefault(labels[r.id], {}).setdefault(name, []).append(curve)
    data.curves = {v: {name: average_curves(cs) for name, cs in d.items()} for v, d in per_variant.items()}
    seeds = sorted({r.seed for r in runs})
    data.gallery_seed = cfg.gallery_seed if cfg.gallery_seed is not None else (seeds[0] if seeds else None)
    order = {v: i for i, v in enumerate(r["variant"] for r in agg["cost"])}
    data.gallery_variants = sorted({labels[r.id] for r in runs}, key=lambda v: order.get(v, len(order)))
    data.gallery_prompts = list(dict.fromkeys(r.prompt for r in runs))[:max(cfg.gallery_prompts, 0)]
    shown = set(data.gallery_prompts)
    scores = {(u.prompt, u.seed, u.variant): u.scores for u in units}
    for r in runs:
        if r.seed != data.gallery_seed or r.prompt not in shown:
            continue
        try:
            uri = "data:image/png;base64," + base64.b64encode((sweep_dir / r.run_dir / IMAGE).read_bytes()).decode()
        except OSError:  # missing or unreadable: the gallery shows a gap ("eval" names the damaged runs)
            uri = None
        data.gallery[(r.prompt, labels[r.id])] = (uri, scores.get((r.prompt, r.seed, labels[r.id]), {}))
    return data


# --- rendering ----------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0 16px} th,td{padding:4px 10px;border:1px solid #ddd;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left} .best{font-weight:bold} .muted{color:#888}
.up{color:#137333} .down{color:#b3261e} .charts{display:flex;flex-wrap:wrap;gap:12px}
.gallery td{vertical-align:top;text-align:center;font-size:11px}
.gallery img{width:96px;height:96px;image-rendering:pixelated;display:block;margin:auto}
.gallery td.p{text-align:left;max-width:220px;font-size:12px} pre{white-space:pre-wrap;font-size:11px}
"""


def _num(v: float | None, digits: int = 3) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.{digits}g}"


def _metric_table(metric: str, rows: list[dict], baseline: str | None) -> str:
    best = max((r["mean"] for r in rows), default=None)
    head = (f"<tr><th class=l>variant</th><th>n</th><th>mean ± CI</th><th>95% CI</th>"
            f"<th>paired diff vs {escape(baseline or '—')}</th><th>95% CI of diff</th></tr>")
    body = []
    for r in rows:
        d = r["diff"]
        cls = ' class="best"' if r["mean"] == best and len(rows) > 1 else ""
        if d:
            sign = "up" if d["lo"] > 0 else "down" if d["hi"] < 0 else "muted"
            diff = (f'<td class="{sign}">{d["mean"]:+.3g}</td>'
                    f'<td class="{sign}">[{d["lo"]:+.3g}, {d["hi"]:+.3g}] (n={d["n"]})</td>')
        else:
            diff = '<td class="muted">baseline</td><td></td>' if r["variant"] == baseline else "<td></td><td></td>"
        body.append(f'<tr><td class=l>{escape(r["variant"])}</td><td>{r["n"]}</td>'
                    f'<td{cls}>{_num(r["mean"], 4)} ± {_num((r["hi"] - r["lo"]) / 2, 2)}</td>'
                    f'<td>[{_num(r["lo"], 4)}, {_num(r["hi"], 4)}]</td>{diff}</tr>')
    return (f'<h3>{escape(metric)}</h3><table class="metric" data-metric="{escape(metric)}">{head}'
            + "".join(body) + "</table>")


def _cost_table(cost: list[dict]) -> str:
    head = "<tr><th class=l>variant</th><th>seconds / image</th><th>prior calls / image</th></tr>"
    body = []
    for r in cost:
        cells = []
        for key in ("seconds", "prior_calls"):
            e = r[key]
            cells.append(f'<td>{_num(e["mean"])} <span class="muted">[{_num(e["lo"])}, {_num(e["hi"])}]</span>'
                         "</td>" if e else "<td>–</td>")
        body.append(f'<tr><td class=l>{escape(r["variant"])}</td>{"".join(cells)}</tr>')
    return f'<table class="cost">{head}{"".join(body)}</table>'


def _controls_table(controls: list[dict], metrics: list[str]) -> str:
    """Each control against the method it controls for: cost per image of both, and the paired gain
    of the method over the control (method - control) per metric."""
    if not controls:
        return ('<p class="muted">none in this sweep (equal compute: <code>--weighting mean</code>; equal time: '
                "<code>rewardsds sweep ... --equal-time-of reward-sds</code>)</p>")
    head = ("<tr><th class=l>control</th><th class=l>for</th><th>seconds / image</th><th>prior calls / image</th>"
            + "".join(f"<th>gain {escape(m)}</th>" for m in metrics) + "</tr>")
    body = []
    for r in controls:
        cells = []
        for m in metrics:
            d = r["gain"].get(m)
            if not d:
                cells.append("<td>–</td>")
                continue
            sign = "up" if d["lo"] > 0 else "down" if d["hi"] < 0 else "muted"
            cells.append(f'<td class="{sign}">{d["mean"]:+.3g} [{d["lo"]:+.3g}, {d["hi"]:+.3g}]</td>')
        body.append(f'<tr><td class=l>{escape(r["variant"])}</td><td class=l>{escape(r["of"])}</td>'
                    f'<td>{escape(cost_text(r, "seconds"))}</td><td>{escape(cost_text(r, "prior_calls"))}</td>'
                    + "".join(cells) + "</tr>")
    note = ('<p class="muted">Equal time: the plain method with its steps scaled so that its seconds per image '
            "match the method's (ratio ≈ 1 in seconds). Equal compute: the same candidates, previews and reward "
            "calls, uniform weights (ratio ≈ 1 in prior calls). Gain: paired difference method − control, 95% "
            "CI; green / red: CI above / below 0.</p>")
    return f'<table class="controls">{head}{"".join(body)}</table>{note}'


def _colors(data: ReportData) -> dict[str, str]:
    """One colour per variant, the same in every chart (tables' order: plain methods first)."""
    order = [r["variant"] for r in data.agg["cost"]] + [v for v in data.curves]
    return {v: svg.color(i) for i, v in enumerate(dict.fromkeys(order))}


def _scatters(data: ReportData) -> str:
    cost = {r["variant"]: r[data.cost_axis] for r in data.agg["cost"]}
    charts = []
    for metric, rows in data.agg["metrics"].items():
        pts = [(r["variant"], cost[r["variant"]]["mean"], r["mean"], r["lo"], r["hi"])
               for r in rows if cost.get(r["variant"])]
        if pts:
            charts.append(svg.scatter_chart(pts, f"{metric} vs cost", COST_LABEL[data.cost_axis], metric,
                                            colors=_colors(data)))
    return f'<div class="charts">{"".join(charts)}</div>' if charts else '<p class="muted">no scores yet</p>'


def _curves(data: ReportData) -> str:
    charts = []
    for name, title, ylabel in (("reward", "mean candidate reward per step", "reward"),
                                ("grad_norm", "gradient norm per step", "||grad||")):
        series = [(v, *c[name]) for v, c in data.curves.items() if c.get(name) and c[name][0]]
        if series:
            charts.append(svg.line_chart(series, title, "step", ylabel, colors=_colors(data)))
    return f'<div class="charts">{"".join(charts)}</div>' if charts else '<p class="muted">no logs</p>'


def _gallery(data: ReportData) -> str:
    if not data.gallery_prompts:
        return '<p class="muted">no images</p>'
    head = "<tr><th class=l>prompt</th>" + "".join(f"<th>{escape(v)}</th>" for v in data.gallery_variants) + "</tr>"
    rows = []
    for p in data.gallery_prompts:
        cells = [f'<td class="p">{escape(p)}</td>']
        for v in data.gallery_variants:
            uri, scores = data.gallery.get((p, v), (None, {}))
            if uri is None:
                cells.append('<td class="muted">–</td>')
                continue
            text = "<br>".join(f"{escape(k)} {_num(s)}" for k, s in sorted(scores.items()))
            cells.append(f'<td><img src="{uri}" alt="{escape(v)}: {escape(p)}"><div>{text}</div></td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="gallery">{head}{"".join(rows)}</table>'


def _failed(failed: list[dict]) -> str:
    if not failed:
        return '<p class="muted">none</p>'
    rows = "".join(f'<tr><td class=l>{escape(f["method"])}</td><td>{f["seed"]}</td><td class=l>'
                   f'{escape(f["prompt"])}</td><td>{f["attempts"]}</td><td class=l><pre>'
                   f'{escape(f["error"][-2000:])}</pre></td></tr>' for f in failed)
    return ("<table class=failed><tr><th class=l>method</th><th>seed</th><th class=l>prompt</th><th>attempts</th>"
            f"<th class=l>error</th></tr>{rows}</table>")


def render(data: ReportData) -> str:
    c = data.counts
    settings = "; ".join(f"{escape(k)}: {escape(v)}" for k, v in data.settings.items())
    boot = data.agg.get("bootstrap", {})
    tables = "".join(_metric_table(m, rows, data.agg["baseline"]) for m, rows in data.agg["metrics"].items())
    if not tables:
        tables = '<p class="muted">no scores yet: run <code>rewardsds eval SWEEP_DIR</code> first</p>'
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(data.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(data.title)}</h1>",
        f'<p>{escape(data.sweep_dir)} — {c.get("done", 0)} done, {c.get("failed", 0)} failed, '
        f'{c.get("pending", 0) + c.get("running", 0)} not finished. {settings}</p>',
        f'<p class="muted">Means with {int(boot.get("level", 0.95) * 100)}% percentile-bootstrap CIs '
        f'({boot.get("replicates", "?")} resamples of whole prompts, all seeds of a prompt together; '
        f'seed {boot.get("seed", "?")}); '
        "paired differences over the (prompt, seed) pairs both variants ran; green / red: CI above / below 0. "
        f"Generated {time.strftime('%Y-%m-%d %H:%M')}.</p>",
        "<h2>Scores</h2>", tables,
        "<h2>Cost per image</h2>", _cost_table(data.agg["cost"]),
        "<h2>Controls</h2>", _controls_table(data.agg.get("controls", []), list(data.agg["metrics"])),
        "<h2>Cost vs quality</h2>", _scatters(data),
        "<h2>Curves</h2>", _curves(data),
        f"<h2>Gallery (seed {escape(str(data.gallery_seed))})</h2>", _gallery(data),
        "<h2>Failed runs</h2>", _failed(data.failed),
        "</body></html>"]
    return "\n".join(parts) + "\n"


def run_report(cfg: ReportConfig) -> dict:
    try:
        check_report(cfg)
    except ValueError as e:
        raise UserError(str(e)) from e
    data = collect(cfg)
    out = Path(cfg.out) if cfg.out is not None else Path(cfg.sweep_dir) / "report.html"
    try:
        save_text(out, render(data))
    except OSError as e:
        raise UserError(f"cannot write {str(out)!r}: {e.strerror or e}") from e
    return {"out": str(out), "metrics": list(data.agg["metrics"]), "images": len(data.gallery)}
