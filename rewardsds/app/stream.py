"""What the page shows of a run, and the stream that follows it: the status lines (progress, ETA, the
judge's verdict), the step's image, the candidate gallery, the curves and the run folder's zip, drawn from
a `Job`'s snapshots, and `follow`, the generator that yields a tab's outputs every `POLL_S` seconds while
the run's `on_step` records arrive. Imports gradio (its warnings and errors); only `server` imports it.
"""

import math
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import gradio as gr

from . import views
from .jobs import Job, Snapshot, Stage

POLL_S = 0.5
"""the page is updated at most this often while a run streams"""


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _progress_line(stage: Stage, snap: Snapshot) -> str:
    if snap.status == "loading":
        return f"**loading** {stage.label}: models and prompt checks"
    rate = f"{snap.rate:.2f} steps/s" if snap.rate else "- steps/s"
    skipped = f" · {snap.skipped} skipped (non-finite gradient)" if snap.skipped else ""
    return (f"**{snap.status}** {stage.label}: step {snap.done}/{snap.total} · {rate} · "
            f"ETA {_duration(snap.eta)}{skipped}")


def verdict_text(summary: dict | None) -> str:
    """The world judge's verdict of a finished run (summary.json's "judge"), one line per image."""
    judge = (summary or {}).get("judge")
    if not judge:
        return "judge: no verdict (not a world prompt, or not a world prior)"
    parts = []
    for v in judge:
        facts = v.get("facts", {})
        right = sum(bool(x) for x in facts.values())
        detail = ", ".join(f"{k} {'✓' if ok else '✗'}" for k, ok in facts.items())
        parts.append(f"judge: **{right}/{len(facts)} facts right** ({detail})")
    return "<br>".join(parts)


def status_text(job: Job) -> str:
    lines = []
    for stage in job.stages:
        snap = stage.progress.snapshot()
        if snap.status == "waiting":
            lines.append(f"waiting: {stage.label}")
        elif snap.status == "done":
            secs = (stage.result or {}).get("wall_seconds", (stage.result or {}).get("seconds"))
            lines.append(f"**done** {stage.label}: {snap.done} steps in {_duration(secs)}")
            if stage.result and stage.result.get("judge") is not None:
                lines.append(verdict_text(stage.result))
        elif snap.status == "stopped":
            where = (f"its checkpoint holds step {stage.checkpoint_step}: Resume continues from there"
                     if stage.checkpoint_step else "no checkpoint was written yet: Resume starts it again")
            lines.append(f"**stopped** {stage.label} after step {stage.stopped_at}; {where}")
        elif snap.status == "failed":
            lines.append(f"**failed** {stage.label}: {stage.error}")
        else:
            lines.append(_progress_line(stage, snap))
    folders = sorted({str(s.out.parent if job.kind == "compare" else s.out) for s in job.stages})
    lines.append(f"run folder: `{folders[0]}`")
    return "\n\n".join(lines)


def plots(snap: Snapshot | None, total: int) -> tuple:
    return views.curves(snap.history if snap else [], total)


def candidate_gallery(snap: Snapshot | None) -> list[tuple]:
    if snap is None or snap.tiles is None:
        return []
    previews, rewards, weights, _ = snap.tiles
    return [(views.tile(im, w if math.isfinite(w) else None), views.caption(r, w if math.isfinite(w) else None))
            for im, r, w in zip(previews, rewards, weights)]


def current_image(snap: Snapshot | None, result_file: Path | None = None):
    if result_file is not None and result_file.exists():
        from PIL import Image

        with Image.open(result_file) as im:
            return im.convert("RGB").copy()
    if snap is None or snap.image is None:
        return None
    return views.show(snap.image, cols=min(4, snap.image.shape[0]))


def zip_outputs(folder: Path) -> str | None:
    """The run folder as a zip beside it (for the page's download), or None if there is no folder."""
    if not folder.is_dir():
        return None
    try:
        return shutil.make_archive(str(folder), "zip", root_dir=folder.parent, base_dir=folder.name)
    except OSError as e:
        gr.Warning(f"could not zip {folder}: {e}")
        return None


def follow(job: Job, render: Callable[[Job, bool], tuple]) -> Iterator[tuple]:
    """Yield `render(job, finished)` whenever the job changed, at most every POLL_S, until it ends;
    then raise its error, if any, as gr.Error. A page that goes away stops its run."""
    last = -1
    try:
        while True:
            finished = job.finished.wait(POLL_S)
            version = sum(s.progress.version for s in job.stages)
            if finished or version != last:
                last = version
                yield render(job, finished)
            if finished:
                break
    finally:
        if not job.finished.is_set():  # the client left (the generator was closed): do not run for no one
            job.stop_event.set()
    if job.error:
        raise gr.Error(job.error, print_exception=False)
