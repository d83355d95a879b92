"""Tiny inline-SVG charts for the HTML report (no JavaScript, no network): line charts and a
scatter with error bars. Every text goes through html.escape; every number is finite or dropped.

Axes map data to pixels linearly: ``px = left + (x - x0) / (x1 - x0) * plot_width`` (y flipped),
with "nice" tick steps of 1, 2, 2.5 or 5 x 10^k chosen so that about 5 ticks cover the range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22")
_MARGIN = {"left": 58, "right": 16, "top": 30, "bottom": 44}


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _pick(colors: Mapping[str, str] | None, label: str, i: int) -> str:
    """The label's colour from the report-wide map (one variant, one colour in every chart), else by index."""
    return (colors or {}).get(label) or color(i)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:  # a single value: pad it so that it sits mid-axis
        pad = abs(lo) * 0.1 or 0.5
        lo, hi = lo - pad, lo + pad
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, v = [], start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12) + 0.0)  # + 0.0 turns -0.0 into 0.0
        v += step
    if ticks[-1] < hi:
        ticks.append(round(v, 12) + 0.0)  # + 0.0 turns -0.0 into 0.0
    return ticks


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}"


class _Axes:
    def __init__(self, xs: Sequence[float], ys: Sequence[float], width: int, height: int, pad_x: float = 0.0) -> None:
        self.w, self.h = width, height
        span = (max(xs) - min(xs)) * pad_x if xs else 0.0  # room for dots and labels at the ends
        self.xt = nice_ticks(min(xs) - span, max(xs) + span) if xs else [0.0, 1.0]
        self.yt = nice_ticks(min(ys), max(ys)) if ys else [0.0, 1.0]
        self.x0, self.x1 = self.xt[0], self.xt[-1]
        self.y0, self.y1 = self.yt[0], self.yt[-1]
        self.pw = width - _MARGIN["left"] - _MARGIN["right"]
        self.ph = height - _MARGIN["top"] - _MARGIN["bottom"]

    def px(self, x: float) -> float:
        return _MARGIN["left"] + (x - self.x0) / ((self.x1 - self.x0) or 1) * self.pw

    def py(self, y: float) -> float:
        return _MARGIN["top"] + (1 - (y - self.y0) / ((self.y1 - self.y0) or 1)) * self.ph

    def frame(self, title: str, xlabel: str, ylabel: str) -> list[str]:
        left, top = _MARGIN["left"], _MARGIN["top"]
        out = [f'<rect x="{left}" y="{top}" width="{self.pw}" height="{self.ph}" fill="#fff" stroke="#999"/>',
               f'<text x="{self.w / 2:.0f}" y="18" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
               f'<text x="{left + self.pw / 2:.0f}" y="{self.h - 6}" text-anchor="middle">{escape(xlabel)}</text>',
               f'<text transform="translate(14 {top + self.ph / 2:.0f}) rotate(-90)" text-anchor="middle">'
               f'{escape(ylabel)}</text>']
        for t in self.xt:
            x = self.px(t)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + self.ph}" stroke="#eee"/>'
                       f'<text x="{x:.1f}" y="{top + self.ph + 16}" text-anchor="middle">{_fmt(t)}</text>')
        for t in self.yt:
            y = self.py(t)
            out.append(f'<line x1="{left}" x2="{left + self.pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                       f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
        return out


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
            f'font-family="sans-serif" font-size="11">' + "".join(body) + "</svg>")


def _finite(*vs) -> bool:
    return all(v is not None and math.isfinite(v) for v in vs)


def line_chart(series: Sequence[tuple[str, Sequence[float], Sequence[float]]], title: str, xlabel: str,
               ylabel: str, width: int = 560, height: int = 320, colors: Mapping[str, str] | None = None) -> str:
    """One polyline per (label, xs, ys), with a legend; non-finite points are dropped."""
    clean = [(lab, [(x, y) for x, y in zip(xs, ys) if _finite(x, y)]) for lab, xs, ys in series]
    clean = [(lab, pts) for lab, pts in clean if pts]
    ax = _Axes([x for _, p in clean for x, _ in p], [y for _, p in clean for _, y in p], width, height)
    body = ax.frame(title, xlabel, ylabel)
    for i, (lab, pts) in enumerate(clean):
        col = _pick(colors, lab, i)
        path = " ".join(f"{ax.px(x):.1f},{ax.py(y):.1f}" for x, y in pts)
        body.append(f'<polyline fill="none" stroke="{col}" stroke-width="1.6" points="{path}">'
                    f"<title>{escape(lab)}</title></polyline>")
        ly = _MARGIN["top"] + 14 + 14 * i
        lx = _MARGIN["left"] + 8
        body.append(f'<line x1="{lx}" x2="{lx + 16}" y1="{ly - 4}" y2="{ly - 4}" stroke="{col}" '
                    f'stroke-width="3"/><text x="{lx + 20}" y="{ly}">{escape(lab)}</text>')
    if not clean:
        body.append(f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" fill="#888">no data'
                    "</text>")
    return _svg(width, height, body, title)


def scatter_chart(points: Sequence[tuple[str, float, float, float | None, float | None]], title: str, xlabel: str,
                  ylabel: str, width: int = 420, height: int = 300, colors: Mapping[str, str] | None = None) -> str:
    """Points (label, x, y, y_lo, y_hi): a dot with a vertical CI bar and its label."""
    pts = [p for p in points if _finite(p[1], p[2])]
    ys = [v for p in pts for v in (p[2], p[3], p[4]) if v is not None and math.isfinite(v)]
    ax = _Axes([p[1] for p in pts], ys, width, height, pad_x=0.08)
    body = ax.frame(title, xlabel, ylabel)
    for i, (lab, x, y, lo, hi) in enumerate(pts):
        col = _pick(colors, lab, i)
        cx, cy = ax.px(x), ax.py(y)
        room_right, room_left = width - cx - 10, cx - 10
        right = room_right >= room_left  # label on the side with more room ...
        text = _fit(lab, room_right if right else room_left)  # ... shortened to fit (full text in the tooltip)
        if _finite(lo, hi):
            body.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{ax.py(lo):.1f}" y2="{ax.py(hi):.1f}" '
                        f'stroke="{col}" stroke-width="2"/>')
        body.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{col}"><title>{escape(lab)}: '
                    f"{_fmt(x)}, {_fmt(y)}</title></circle>"
                    f'<text x="{cx + (8 if right else -8):.1f}" y="{cy - 6:.1f}" fill="{col}" '
                    f'text-anchor="{"start" if right else "end"}">{escape(text)}</text>')
    return _svg(width, height, body, title)


def _fit(label: str, room_px: float, char_px: float = 6.2) -> str:
    """The label cut to about room_px pixels of 11 px sans-serif (~6.2 px a character), ending in '…'."""
    n = int(room_px // char_px)
    return label if len(label) <= n else label[:max(n - 1, 1)] + "…"
