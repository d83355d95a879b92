"""`rewardsds app` in a real headless browser: the server runs as the command a person types (a
subprocess, free port, embedded world on the CPU); Playwright drives the system's Chromium (no browser
download). Skipped, with the reason, where gradio, playwright or chromium is missing.

REWARDSDS_APP_SCREENSHOT=PATH saves a screenshot of the page mid-run (docs/app.png is one), taken once
the run passes step REWARDSDS_APP_SCREENSHOT_AT (default 12).
"""

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
MISSING = [m for m in ("gradio", "playwright") if importlib.util.find_spec(m) is None]
pytestmark = [
    pytest.mark.skipif(bool(MISSING), reason=f"{' and '.join(MISSING)} not installed: pip install -e '.[test]'"),
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium): the app's "
                                                "browser test needs a real browser"),
]
START_S, RUN_S = 240, 420  # generous: CI machines may be busy


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(URL, the app's root folder, its output lines) of `rewardsds app --port 0` in a subprocess; stopped
    with SIGTERM (SIGINT may be ignored in a process started from a background job)."""
    root = tmp_path_factory.mktemp("app") / "root"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rewardsds.cli", "app", "--port", "0", "--root", str(root),
                             "--device", "cpu", "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    lines: list[str] = []
    found = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if "serving on" in line:
                found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not found.wait(START_S):
            pytest.fail(f"the app did not start in {START_S} s:\n{''.join(lines)[-3000:]}")
        url = re.search(r"serving on (http://\S+)", "".join(lines)).group(1)
        yield url, root, lines
    finally:
        proc.send_signal(signal.SIGTERM)  # the app stops its run (checkpointed) and closes the server
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("the app did not stop within 60 s of SIGTERM")
        reader.join(10)
        assert proc.returncode == 0 and "rewardsds app: stopped" in "".join(lines), "".join(lines)[-3000:]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def _page(browser, url: str, problems: list[str]):
    page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(url)
    page.wait_for_selector("#gen-run", timeout=60_000)
    return page


def _wait_status(page, pattern: str, timeout_s: float = RUN_S, sel: str = "#gen-status") -> re.Match:
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = page.inner_text(sel)
        m = re.search(pattern, text)
        if m:
            return m
        if "failed" in text:
            break
        time.sleep(0.25)
    raise AssertionError(f"status never matched {pattern!r}: {text!r}")


def _toast(page) -> str:
    page.wait_for_selector("[data-testid=toast-text]", timeout=60_000)
    text = " | ".join(page.locator("[data-testid=toast-text]").all_inner_texts())
    for close in page.locator("[data-testid=toast-close]").all():
        close.click()
    # the closed toast lingers while it fades: wait until it is gone, or the next _toast reads it, empty
    page.wait_for_selector("[data-testid=toast-text]", state="detached", timeout=10_000)
    return text


def _set(page, field: str, value) -> None:
    page.fill(f"#gen-{field} input, #gen-{field} textarea", str(value))


def _tiles(page) -> list[str]:
    return page.locator("#gen-gallery .thumbnail-item").all_inner_texts()


def test_generate_streams_stops_and_resumes(server, browser):
    url, root, server_log = server
    problems: list[str] = []
    page = _page(browser, url, problems)

    # bad input: the app's message in the page, nothing started
    _set(page, "prompt", "a red circle")
    _set(page, "n", 0)
    page.click("#gen-run")
    assert "N (candidates) must be in [1, 64], got 0" in _toast(page)
    _set(page, "n", 4)

    # a short run to the end: final image, the N candidates with reward and weight, the curves, the zip
    _set(page, "steps", 10)
    page.click("#gen-run")
    _wait_status(page, r"done generate: 10 steps")
    assert page.locator("#gen-image img").count() == 1
    tiles = _tiles(page)
    assert len(tiles) == 4 and all(re.search(r"r -?[\d.]+ · w [+-]\d\.\d\d", t) for t in tiles), tiles
    assert any("w +" in t for t in tiles) and any("w -" in t for t in tiles)
    for plot in ("#gen-reward-plot img", "#gen-grad-plot img"):
        assert page.locator(plot).count() == 1
    status = page.inner_text("#gen-status")
    assert "judge:" in status
    folder = Path(re.search(r"run folder: (\S+)", status).group(1))
    assert f"{folder.name}.zip" in re.sub(r"\s", "", page.inner_text("#gen-zip"))  # name and suffix: two spans
    assert folder.parent == root and json.loads((folder / "summary.json").read_text())["steps"] == 10
    assert folder.with_suffix(".zip").exists()

    # a long run: live progress (steps/s, ETA, candidates, curves) while it runs
    _set(page, "steps", 300)
    page.click("#gen-run")
    shot_at = int(os.environ.get("REWARDSDS_APP_SCREENSHOT_AT", "12"))
    m = _wait_status(page, r"running generate: step (\d+)/300 · [\d.]+ steps/s · ETA")
    while int(m.group(1)) < shot_at:
        m = _wait_status(page, r"running generate: step (\d+)/300 · [\d.]+ steps/s · ETA")
    time.sleep(1.0)  # one more update: the page shows the image, the tiles and the curves of a late step
    assert page.locator("#gen-image img").count() == 1 and len(_tiles(page)) == 4
    if os.environ.get("REWARDSDS_APP_SCREENSHOT"):
        page.screenshot(path=os.environ["REWARDSDS_APP_SCREENSHOT"], full_page=True)

    # a second browser (another session) is told the app is busy; its Stop does not touch this run
    other = _page(browser, url, problems)
    other.fill("#gen-steps input", "5")
    other.click("#gen-run")
    busy = _toast(other)
    assert "busy: generate" in busy and "from another tab or browser; one run at a time" in busy
    other.click("#gen-stop")
    assert "nothing started from this tab is running" in _toast(other)
    _wait_status(page, r"running generate: step \d+/300")

    # Stop: the run ends at a step boundary and keeps its checkpoint; Resume continues the same folder
    page.click("#gen-stop")
    m = _wait_status(page, r"stopped generate after step (\d+); its checkpoint holds step (\d+)")
    stopped, ckpt = int(m.group(1)), int(m.group(2))
    assert ckpt == stopped // 10 * 10 and ckpt >= 10
    status = page.inner_text("#gen-status")
    folder = Path(re.search(r"run folder: (\S+)", status).group(1))
    assert (folder / "checkpoint.safetensors").exists() and not (folder / "summary.json").exists()
    page.click("#gen-resume")
    m = _wait_status(page, r"running generate: step (\d+)/300")
    m = _wait_status(page, rf"running generate: step ({ckpt + 3}|{ckpt + 4}|{ckpt + 5}|[1-9]\d\d+)/300")
    page.click("#gen-stop")
    m = _wait_status(page, r"stopped generate after step (\d+)")
    assert int(m.group(1)) > ckpt
    log = [json.loads(ln)["step"] for ln in (folder / "log.jsonl").read_text().splitlines()]
    assert log == list(range(len(log))) and len(log) >= ckpt + 3  # one run, continued, no step twice

    assert not problems, problems
    assert not any("Traceback" in ln for ln in server_log), "".join(server_log)[-3000:]

