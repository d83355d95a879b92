"""The HTML report: self-contained, escaped, and rendered by a real headless browser."""

import base64
import re
import shutil
import subprocess
from pathlib import Path

import _sweep_helpers as h
import pytest

from rewardsds.cli import main
from rewardsds.errors import UserError
from rewardsds.report.config import ReportConfig
from rewardsds.report.html import average_curves, run_report

EVIL = 'a red circle <script>alert("x")</script> & "quotes"'
PROMPTS = (h.WORLD_PROMPTS[0], h.WORLD_PROMPTS[1], EVIL)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _score(prompt, method, seed):
    base = 10.0 * PROMPTS.index(prompt) + seed
    return {"judge": 50.0 + base + (20 if method == "reward-sds" else 0), "world-clip": 20 + 0.1 * base}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = h.make_fake_sweep(tmp_path_factory.mktemp("sweep"), prompts=PROMPTS, score=_score)
    assert main(["report", str(out), "--bootstrap", "200"]) == 0
    return out / "report.html"


def test_report_is_self_contained_and_escaped(report):
    html = report.read_text()
    assert html.count("<table") == 4  # 2 metrics, cost, gallery (no failed runs: no table)
    assert len(re.findall(r'<table class="metric"', html)) == 2
    imgs = re.findall(r'<img src="([^"]+)"', html)
    assert len(imgs) == 3 * 2  # 3 prompts x 2 methods at seed 0
    for src in imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<script" not in html and "&lt;script&gt;" in html  # the prompt is text, not markup
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from the network
    assert html.count("<svg") >= 4  # 2 scatters + reward + grad-norm curves
    # reward-sds is exactly +20 judge on every (prompt, seed): its paired diff and CI say so
    row = re.search(r"<tr><td class=l>reward-sds</td>.*?</tr>", html[html.index('data-metric="judge"'):]).group(0)
    assert '<td class="up">+20</td>' in row and "[+20, +20]" in row


def test_each_variant_has_one_colour_in_every_chart(report):
    html = report.read_text()
    colours: dict[str, set[str]] = {}
    for col, label in re.findall(r'<circle [^>]*fill="(#\w+)"><title>([^:<]+):', html):
        colours.setdefault(label, set()).add(col)
    for col, label in re.findall(r'<polyline [^>]*stroke="(#\w+)"[^>]*><title>([^<]+)</title>', html):
        colours.setdefault(label, set()).add(col)
    assert {"sds", "reward-sds"} <= set(colours)
    assert all(len(c) == 1 for c in colours.values()), colours  # curves list sds first, scatters too
    assert colours["sds"] != colours["reward-sds"]


def test_report_errors(tmp_path):
    with pytest.raises(UserError, match="not a sweep folder"):
        run_report(ReportConfig(sweep_dir=tmp_path))


def test_average_curves_bins_long_logs():
    xs, ys = average_curves([{s: float(s) for s in range(1000)}, {s: float(s) + 2 for s in range(1000)}],
                            max_points=100)
    assert len(xs) == 100 and ys[0] == pytest.approx(xs[0] + 1)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium): the real-browser "
                                             "check of the report is skipped")
def test_report_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "report.png"
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
              "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
              "--v=0", "--window-size=1200,2000"]
    url = report.resolve().as_uri()
    r = subprocess.run([*common, f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000, r.stderr[-2000:]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert len(re.findall(r"<table", dom.stdout)) == 4 and len(re.findall(r"<img ", dom.stdout)) == 6
    assert len(re.findall(r"<svg", dom.stdout)) >= 4
    for stderr in (r.stderr, dom.stderr):
        # the page has no scripts, so any console message at all (console.error, an uncaught error) is a bug
        bad = [ln for ln in stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln
               or "Failed to load resource" in ln]
        assert not bad, bad
    keep = Path("/tmp/rewardsds_report_screenshot.png")  # for a person to look at
    shutil.copyfile(shot, keep)


def test_scatter_labels_stay_inside_the_chart():
    from rewardsds.report.svg import scatter_chart

    long = "reward-sds [reward=world-aesthetic, n_noises=8, denoise_steps=15]"
    chart = scatter_chart([("sds", 7.0, 60.0, 55.0, 65.0), (long, 25.0, 70.0, 65.0, 75.0)], "t", "s", "judge",
                          width=420)
    texts = re.findall(r'<text x="([\d.]+)"[^>]*text-anchor="(start|end)">([^<]*)</text>', chart)
    labels = [(float(x), anchor, t) for x, anchor, t in texts if t.startswith(("sds", "reward"))]
    assert len(labels) == 2
    for x, anchor, t in labels:  # ~6.2 px a character of 11 px sans-serif
        left, right = (x, x + 6.2 * len(t)) if anchor == "start" else (x - 6.2 * len(t), x)
        assert left >= 0 and right <= 420, (t, left, right)
    assert any(t.endswith("…") for _, _, t in labels) and f"<title>{long}: 25, 70</title>" in chart
