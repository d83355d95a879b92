"""`rewardsds eval`: score every finished run of a sweep, store the scores, print the aggregate tables.

Each run's ``image_raw.png`` (B tiles side by side for --batch B) is scored with every metric:

* ``judge``: the world's exact judge (world prompts only): ``judge`` = 100 x fraction of the prompt's
  facts that hold, ``judge-all`` = 100 x [all facts hold]; both in percent, like the paper's grader.
* anything else: a reward spec for `load_reward` (world-clip, world-aesthetic, clip, aesthetic@head,
  imagereward, pickscore, hpsv2, a mix, module:function). CLIPScore already comes x100 from the
  reward (``100 max(cos, 0)``), as the paper reports it: nothing is rescaled here.

A run's score is the mean over its tiles. Scores already stored are kept unless --force, so adding a
metric later only computes that metric. The tables go to stdout, ``SWEEP_DIR/eval.json`` and
``SWEEP_DIR/eval.md`` (Markdown).

A finished run whose image is missing or unreadable is skipped with a warning, not the whole eval:
one damaged folder of a long sweep should not throw away the scores of the others. The rest is
scored, stored and tabled, and the command exits 1 (as `rewardsds sweep` does when runs failed);
the skipped runs have no score, so a rerun after repairing them scores just those. A metric that
does not behave like a reward (wrong signature, raises, wrong number of scores, NaN) stops the eval
with one line: every run would hit it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UserError
from ..sweep.store import Run, Store
from .aggregate import EQUAL_COMPUTE, EQUAL_TIME, Unit, aggregate, control_kind, variant_labels
from .config import check_eval
from .tables import format_markdown, format_tables

if TYPE_CHECKING:
    from .config import EvalConfig

JUDGE, JUDGE_ALL = "judge", "judge-all"
IMAGE = "image_raw.png"
MAX_WARNINGS = 10
DEFAULT_WEIGHTING = "top-bottom"  # DistillOptions.weighting: what an equal-compute (mean) run controls for


def default_weighting(config: dict) -> dict:
    """A run's canonical config with the default weighting and its options (what a --weighting mean run is
    the equal-compute control of), written as the sweep writes configs (`config.identity`)."""
    from ..config import SCHEME_ONLY, DistillOptions, identity

    d = {**config, "weighting": DEFAULT_WEIGHTING}
    for k, (scheme, _) in SCHEME_ONLY.items():
        if scheme == DEFAULT_WEIGHTING:
            d[k] = getattr(DistillOptions, k)
    return identity(d, config["method"])
_CALLABLE = re.compile(r"^\s*[A-Za-z_][\w.]*:[A-Za-z_]\w*\s*$")  # a module.path:function metric


def parse_metrics(text: str) -> list[str]:
    names = list(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    if not names:
        raise UserError("--metrics is empty; e.g. --metrics judge,world-clip,world-aesthetic")
    return names


def open_store(sweep_dir: Path) -> Store:
    db = Path(sweep_dir) / "sweep.db"
    if not db.exists():
        raise UserError(f"{str(sweep_dir)!r} is not a sweep folder (no sweep.db); run `rewardsds sweep` first")
    try:
        return Store(db)
    except Exception as e:  # noqa: BLE001 - sqlite3.DatabaseError, schema mismatch: all one message
        raise UserError(f"cannot read {db}: {e}") from e


def read_tiles(path: Path, n: int) -> np.ndarray:
    """image_raw.png -> float32 [n, H, W, 3] in [0, 1] (the n tiles are laid out side by side, no padding).
    A missing, unreadable or corrupt file raises ``ValueError`` saying which."""
    import zlib

    from PIL import Image

    try:
        with Image.open(path) as im:
            img = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except FileNotFoundError as e:
        raise ValueError(f"{path} does not exist") from e
    # PIL reports damage as OSError (truncated, not an image), SyntaxError (broken PNG chunks),
    # zlib.error or DecompressionBombError, depending on where the bytes go wrong
    except (OSError, SyntaxError, zlib.error, Image.DecompressionBombError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e
    h, w, _ = img.shape
    if n < 1 or w % n:
        raise ValueError(f"{path} is {w} px wide: not {n} tiles")
    return img.reshape(h, n, w // n, 3).transpose(1, 0, 2, 3)


def _tiles(sweep_dir: Path, run: Run) -> np.ndarray:
    return read_tiles(Path(sweep_dir) / run.run_dir / IMAGE, int(run.config.get("batch", 1)))


def readable_runs(sweep_dir: Path, runs: list[Run]) -> tuple[list[Run], dict[int, str]]:
    """The runs whose image reads as their tiles, and run id -> why not for the others."""
    ok, bad = [], {}
    for run in runs:
        try:
            _tiles(sweep_dir, run)
        except ValueError as e:
            bad[run.id] = str(e)
        else:
            ok.append(run)
    return ok, bad


def check_metric(spec: str) -> None:
    """Fail before any image is scored when a ``module:function`` metric cannot be one (not importable,
    not callable as ``f(images, prompts)``: `load_reward` checks). Named models are checked as they load."""
    if spec in (JUDGE, JUDGE_ALL) or not _CALLABLE.match(spec):
        return
    from ..rewards.factory import load_reward

    try:
        load_reward(spec)
    except (ValueError, ImportError) as e:
        raise UserError(f"cannot load metric {spec!r}: {e}") from e


def score_judge(sweep_dir: Path, runs: list[Run]) -> list[tuple[int, str, float]]:
    """(run id, metric, value) for both judge metrics, for runs whose prompt is a world prompt."""
    from ..world.judge import judge, parse_prompt

    out = []
    for run in runs:
        try:
            parse_prompt(run.prompt)
        except ValueError:
            continue  # not a world prompt: the judge has nothing to say
        verdicts = [judge(tile, run.prompt) for tile in _tiles(sweep_dir, run)]
        out.append((run.id, JUDGE, 100.0 * float(np.mean([v.accuracy for v in verdicts]))))
        out.append((run.id, JUDGE_ALL, 100.0 * float(np.mean([v.all_correct for v in verdicts]))))
    return out


def score_reward(sweep_dir: Path, runs: list[Run], spec: str, device: str = "cpu",
                 batch_size: int = 32) -> list[tuple[int, str, float]]:
    """(run id, spec, mean reward over the run's tiles), in batches of same-sized tiles."""
    import torch

    from ..rewards.base import CallableReward, MixReward
    from ..rewards.factory import load_reward

    try:
        reward = load_reward(spec, device=device)
    except (ValueError, ImportError, OSError) as e:
        raise UserError(f"cannot load metric {spec!r}: {e}") from e
    parts = reward.rewards if isinstance(reward, MixReward) else [reward]
    # user code (module:function) may fail in any way; a named model failing otherwise is a bug
    catch = Exception if any(isinstance(r, CallableReward) for r in parts) else (ValueError, TypeError)
    items: dict[tuple, list[tuple[int, np.ndarray, str]]] = {}  # tile shape -> (run id, tile, prompt)
    for run in runs:
        for tile in _tiles(sweep_dir, run):
            items.setdefault(tile.shape, []).append((run.id, tile, run.prompt))
    sums: dict[int, list[float]] = {}
    for group in items.values():
        for i in range(0, len(group), batch_size):
            chunk = group[i:i + batch_size]
            images = torch.from_numpy(np.stack([t for _, t, _ in chunk])).permute(0, 3, 1, 2).contiguous()
            try:  # Reward.__call__ checks the scores: one finite score per image
                scores = reward(images, [p for _, _, p in chunk])
            except catch as e:  # noqa: BLE001 - user code: one line, not its traceback
                first = chunk[0][2]
                raise UserError(f"metric {spec!r} failed on {len(chunk)} images (first prompt: {first!r}): "
                                f"{type(e).__name__}: {e}") from e
            for (rid, _, _), s in zip(chunk, scores.tolist()):
                sums.setdefault(rid, []).append(float(s))
    return [(rid, spec, float(np.mean(v))) for rid, v in sums.items()]


def load_units(store: Store) -> tuple[list[Unit], dict[int, str]]:
    """Done runs as aggregation units (cost per image = run cost / batch), and each run's variant label.
    A control's unit names the variant it controls for: an equal-time control the variant its config
    names (``equal_time.target``), a --weighting mean run the same settings with the default weighting."""
    from ..sweep.store import variant_key

    runs = store.runs("done")
    scores = store.metrics()
    labels = variant_labels({r.id: {**r.config, "method": r.method} for r in runs})
    by_key = {variant_key({**r.config, "method": r.method}): labels[r.id] for r in runs}
    units = []
    for r in runs:
        batch = max(1, int(r.config.get("batch", 1)))
        kind, target = control_kind({**r.config, "method": r.method}), None
        if kind == EQUAL_TIME:
            target = by_key.get(r.config["equal_time"].get("target"))
        elif kind == EQUAL_COMPUTE:
            target = by_key.get(variant_key(default_weighting({**r.config, "method": r.method})))
        units.append(Unit(labels[r.id], r.prompt, r.seed, scores.get(r.id, {}),
                          seconds=r.seconds / batch if r.seconds is not None else None,
                          prior_calls=r.prior_calls / batch if r.prior_calls is not None else None,
                          control=kind, control_of=target))
    return units, labels


def _warn_skipped(sweep_dir: Path, runs: list[Run], skipped: dict[int, str]) -> None:
    for run in [r for r in runs if r.id in skipped][:MAX_WARNINGS]:
        summary = Path(sweep_dir) / run.run_dir / "summary.json"
        print(f"eval: skipped {run.method} seed {run.seed} {run.prompt!r}: {skipped[run.id]} (repair it, or "
              f"delete {summary} and rerun `rewardsds sweep` to redo the run)", file=sys.stderr)
    if len(skipped) > MAX_WARNINGS:
        print(f"eval: ... and {len(skipped) - MAX_WARNINGS} more runs skipped", file=sys.stderr)


def run_eval(cfg: EvalConfig) -> dict:
    from .. import media
    from ..commands.common import pick_device

    try:
        check_eval(cfg)
    except ValueError as e:
        raise UserError(str(e)) from e
    metrics = parse_metrics(cfg.metrics)
    for metric in metrics:  # a broken module:function metric fails now, not after the others ran
        check_metric(metric)
    sweep_dir = Path(cfg.sweep_dir)
    with open_store(sweep_dir) as store:
        runs = store.runs("done")
        if not runs:
            raise UserError(f"no finished runs in {str(sweep_dir)!r} yet")
        have = store.metrics()
        keys = {JUDGE if m in (JUDGE, JUDGE_ALL) else m for m in metrics}
        need = [r for r in runs if cfg.force or not keys <= set(have.get(r.id, {}))]
        _, skipped = readable_runs(sweep_dir, need)
        _warn_skipped(sweep_dir, runs, skipped)
        if skipped and len(skipped) == len(runs):
            raise UserError(f"no finished run in {str(sweep_dir)!r} has a readable {IMAGE} "
                            f"(first: {next(iter(skipped.values()))})")
        device = None
        for metric in metrics:
            key = JUDGE if metric in (JUDGE, JUDGE_ALL) else metric
            todo = [r for r in runs if (cfg.force or key not in have.get(r.id, {})) and r.id not in skipped]
            if not todo:
                continue
            if key == JUDGE:
                values = score_judge(sweep_dir, todo)
                if not values:
                    print("eval: no world prompts among the runs; the judge scores none of them")
            else:
                device = device or str(pick_device(cfg.device))
                values = score_reward(sweep_dir, todo, metric, device=device, batch_size=cfg.batch_size)
            store.set_metrics(values)
        units, _ = load_units(store)
    wanted = [m for m in metrics if m != JUDGE_ALL]
    wanted = [x for m in wanted for x in ((JUDGE, JUDGE_ALL) if m == JUDGE else (m,))]
    agg = aggregate(units, wanted, baseline=cfg.baseline, b=cfg.bootstrap, seed=cfg.ci_seed)
    agg["metrics"] = {m: rows for m, rows in agg["metrics"].items() if rows}
    if cfg.baseline and agg["baseline"] is None:
        print(f"eval: baseline {cfg.baseline!r} matches no single variant; no paired differences")
    print(format_tables(agg))
    media.save_text(sweep_dir / "eval.md", format_markdown(agg))
    path = media.save_json(sweep_dir / "eval.json", agg)
    result = {"out": str(path), **{k: agg[k] for k in ("baseline", "metrics")}}
    if skipped:  # the CLI then exits 1 with "N of M runs failed", as after a partly failed sweep
        result.update(failed=len(skipped), runs=len(runs))
    return result
