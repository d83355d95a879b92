"""The sweep driver: plan the runs, claim them from the store, execute them on local processes or Ray
tasks, and record every outcome.

Only this driver writes the store; workers run `execute` (one `run_generate` each, one torch thread)
and send back a small result dict. The driver renews its lease on the rows it holds every
`HEARTBEAT_S`, so a second driver can tell a live sweep from a dead one.

A worker process that dies (killed, out of memory) breaks the whole local pool, and every run in
flight fails with it. Blaming all of them would burn the retries of innocent runs, so the crashed
batch is re-run one run at a time: a crash there names its culprit exactly. The other way round, a
driver that dies (even by SIGKILL) takes its local workers with it (`backends._die_with_parent`).

With --ray the workers write the run folders themselves, so OUT must be storage that every node
can write (a shared file system); the SQLite store is opened by the driver alone.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from .backends import init_worker, make_backend
from .store import RunSpec, Store, new_owner

if TYPE_CHECKING:
    from .config import SweepConfig

HEARTBEAT_S = 30.0
# Fields that do not change what a run computes, left out of its hash (so adding such an option
# never reruns finished sweeps).
NOT_HASHED = ("out", "progress", "resume", "overwrite", "checkpoint_every", "threads", "allow_unknown_words")
# Fields read only by reward-* methods: plain methods with different values are the same run.
REWARD_ONLY = ("reward", "n_noises", "denoise_steps", "reward_steps", "weighting", "softmax_temperature",
               "softmax_normalize", "weight_scale", "preview_cfg", "preview_schedule",
               "preview_decoder")


def read_prompts(path: Path) -> list[str]:
    """One prompt per line; '#' starts a comment; blank lines and repeats are dropped."""
    if Path(path).is_dir():
        raise UserError(f"{str(path)!r} is a folder; give the prompts file: rewardsds sweep PROMPTS_FILE ...")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise UserError(f"prompts file {str(path)!r} does not exist") from e
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read prompts file {str(path)!r}: {e}") from e
    prompts = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    prompts = list(dict.fromkeys(p for p in prompts if p))
    if not prompts:
        raise UserError(f"prompts file {str(path)!r} has no prompts (one per line, '#' for comments)")
    return prompts


def canonical_config(gen) -> dict:
    """The resolved GenerateConfig as the JSON-able dict that identifies a run (see NOT_HASHED,
    REWARD_ONLY, config.identity); None fields are filled from the prior's defaults first, so --steps 300
    and the default 300 are the same run."""
    from ..config import identity, resolve

    d = dataclasses.asdict(resolve(gen))
    for k in NOT_HASHED + (() if gen.method.startswith("reward-") else REWARD_ONLY):
        d.pop(k, None)
    d = identity(d, gen.method)  # options added later, at their earlier implicit value, keep old hashes
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def plan(cfg: SweepConfig, prompts: list[str]) -> list[RunSpec]:
    """The cross product methods x prompts x seeds, validated before anything runs."""
    from ..config import GenerateConfig, guidance_config, loop_config, resolve
    from .config import FORWARDED
    from .fingerprint import weights_fingerprint

    _checked(cfg)
    common = {k: getattr(cfg, k) for k in FORWARDED}
    fingerprints: dict[tuple, str] = {}  # hashing the weight folders once per (prior, reward)
    specs = []
    for method in dict.fromkeys(cfg.methods):
        try:
            probe = resolve(GenerateConfig(**common, method=method, prompt=prompts[0]))
            guidance_config(probe), loop_config(probe)
        except ValueError as e:
            raise UserError(str(e)) from e
        for prompt in prompts:
            for seed in dict.fromkeys(cfg.seeds):
                conf = canonical_config(GenerateConfig(**common, method=method, prompt=prompt, seed=seed))
                key = (conf["prior"], conf.get("reward"))
                if key not in fingerprints:
                    fingerprints[key] = weights_fingerprint(*key)
                conf["weights"] = fingerprints[key]  # a retrained model must not reuse these runs
                spec = RunSpec(prompt, method, seed, conf, "")
                specs.append(dataclasses.replace(spec, run_dir=f"runs/{spec.config_hash[:16]}"))
    return specs


def _checked(cfg: SweepConfig) -> None:
    from .config import check_sweep

    try:
        check_sweep(cfg)
    except ValueError as e:
        raise UserError(str(e)) from e


def _check_prior(spec: str) -> None:
    """Fail once, before any worker starts, when the embedded prior is missing (every run would fail)."""
    if spec != "world":
        return
    from ..world.paths import prior_dir

    if not (prior_dir() / "unet").is_dir():
        raise UserError(f"the embedded world prior is not in {prior_dir()} (train it with "
                        "`python -m rewardsds.world.train_prior`) - or pass --prior FOLDER")


def execute(task: dict) -> dict:
    """Worker side: one `run_generate` into task['run_dir']. Never raises: errors come back as data
    (arbitrary exceptions need not pickle). A run whose summary.json already exists was finished by an
    earlier driver that died before recording it, and is adopted as it is."""
    import json

    init_worker()  # Ray workers get no initializer
    run_dir = Path(task["run_dir"])
    summary_path = run_dir / "summary.json"
    try:
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())
        else:
            import torch

            from ..checkpoints import CHECKPOINT_NAME
            from ..config import GenerateConfig
            from ..run2d import run_generate

            torch.set_num_threads(1)

            resume = (run_dir / CHECKPOINT_NAME).exists()  # a killed attempt continues where it stopped
            # otherwise start afresh: --overwrite drops what an attempt killed before its first checkpoint
            # left (log lines; a pickle checkpoint.pt of an earlier version, which is never loaded)
            run = {"out": run_dir, "progress": False, "resume": resume, "overwrite": not resume, "threads": 1}
            fields = {f.name for f in dataclasses.fields(GenerateConfig)}
            conf = {k: v for k, v in {**task["config"], **run}.items() if k in fields}
            summary = run_generate(GenerateConfig(**conf))
        return {"ok": True, "seconds": summary.get("seconds"), "prior_calls": summary.get("prior_calls")}
    except UserError as e:
        return {"ok": False, "error": str(e), "user_error": True}
    except Exception as e:  # noqa: BLE001 - reported to the driver, which decides about retries
        tail = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-3:])
        return {"ok": False, "error": f"{type(e).__name__}: {e}\n{tail}", "user_error": False}



def run_sweep(cfg: SweepConfig, execute_fn: Callable[[dict], dict] | None = None) -> dict:
    """Run every missing run of the sweep; returns counts and the store path (the CLI prints it).
    With --equal-time-of, a second phase then runs the equal-time control (`equal_time_specs`).

    ``execute_fn`` replaces `execute` (tests); it must be a picklable top-level function."""
    _checked(cfg)  # before the prompts file is read or OUT is touched
    prompts = read_prompts(cfg.prompts_file)
    specs = plan(cfg, prompts)
    if execute_fn is None:
        _check_prior(cfg.prior)
    out = Path(cfg.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        store = Store(out / "sweep.db")
    except (OSError, ValueError) as e:
        raise UserError(f"cannot open the sweep store in {str(out)!r}: {e}") from e
    fn = execute_fn or execute
    extra: dict = {}
    with store:
        ids, stats = _run_phase(cfg, store, specs, out, fn)
        if cfg.equal_time_of is not None:
            controls, extra = equal_time_specs(cfg, store, specs, ids)
            if controls:
                more, more_stats = _run_phase(cfg, store, controls, out, fn)
                ids += more
                stats = {k: stats[k] + more_stats[k] for k in stats}
        counts = store.counts(ids)
        failed = [r for r in store.runs("failed", ids)]
    for r in failed[:10]:
        first = (r.error or "").strip().splitlines()[:1]
        print(f"failed: {r.method} seed {r.seed} {r.prompt!r}: {first[0] if first else '?'}", file=sys.stderr)
    if len(failed) > 10:
        print(f"... and {len(failed) - 10} more failed runs", file=sys.stderr)
    return {"out": str(out / "sweep.db"), "runs": len(ids), "done": counts["done"], "failed": counts["failed"],
            "ran": stats["ran"], "skipped": stats["skipped"], "seconds": round(stats["seconds"], 2), **extra}


def _run_phase(cfg: SweepConfig, store: Store, specs: list[RunSpec], out: Path, fn: Callable[[dict], dict]
               ) -> tuple[list[int], dict]:
    """Add the specs to the store and run the ones not done; (their ids, stats)."""
    owner = new_owner()
    ids = store.add_runs(specs)
    store.recover(owner)
    for r in store.runs("done", ids):
        if not (out / r.run_dir / "summary.json").exists():
            store.reopen(r.id)
    store.rearm(ids)
    backend = make_backend(cfg, fn, len(ids) - store.counts(ids)["done"])
    try:
        stats = _drive(cfg, store, ids, owner, backend, out)
    finally:
        backend.close()
    return ids, stats


def equal_time_specs(cfg: SweepConfig, store: Store, specs: list[RunSpec], ids: list[int]
                     ) -> tuple[list[RunSpec], dict]:
    """The equal-time control of ``cfg.equal_time_of`` (method M, plain version P, e.g. reward-sds / sds):
    P's runs again with ``steps = max(1, round(steps x ratio))``, ratio = M's mean seconds per image /
    P's over the (prompt, seed) pairs of this sweep (summary.json's "seconds": the optimisation loop).

    The ratio is measured once every run of M and P in this sweep is done, and kept in the store keyed
    by both variants, so a rerun (or a sweep adding prompts) plans the same control runs; before that,
    no control is planned (a rerun after the failed runs are fixed plans it). --equal-time-ratio
    replaces the measurement. The control's config = P's + ``equal_time`` {of: M, target: M's variant
    key, base_steps}, so plain runs keep their hashes and eval can name the control and its target.
    Returns (specs, what to add to the sweep's result)."""
    from .store import variant_key

    method = cfg.equal_time_of
    plain = method.removeprefix("reward-")
    target = [s for s in specs if s.method == method]
    base = [s for s in specs if s.method == plain]
    pair = variant_key({"method": variant_key(target[0].config), "plain": variant_key(base[0].config)})
    if cfg.equal_time_ratio is not None:
        ratio, source = float(cfg.equal_time_ratio), "given"
    else:
        kept = store.equal_time(pair)
        if kept is None:
            runs = [r for r in store.runs(ids=ids) if r.method in (method, plain)]
            waiting = sum(r.status != "done" or r.seconds is None for r in runs)
            if waiting:
                print(f"equal time: {waiting} runs of {plain} / {method} are not done; the {plain} control "
                      "is planned once they all are (rerun the sweep)", file=sys.stderr)
                return [], {"equal_time": None}

            def per_image(m: str) -> float:
                vals = [r.seconds / max(1, int(r.config.get("batch", 1))) for r in runs if r.method == m]
                return sum(vals) / len(vals)

            t_method, t_plain = per_image(method), per_image(plain)
            if not t_plain > 0:
                raise UserError(f"cannot measure the equal-time ratio: {plain} runs took {t_plain} s")
            kept = store.keep_equal_time(pair, t_method / t_plain, t_method, t_plain, len(target))
        ratio, source = kept["ratio"], "measured"
    base_steps = int(base[0].config["steps"])
    steps = max(1, round(base_steps * ratio))
    key = variant_key(target[0].config)
    controls = []
    for s in base:
        conf = {**s.config, "steps": steps, "equal_time": {"of": method, "target": key, "base_steps": base_steps}}
        spec = RunSpec(s.prompt, s.method, s.seed, conf, "")
        controls.append(dataclasses.replace(spec, run_dir=f"runs/{spec.config_hash[:16]}"))
    print(f"equal time: {plain} x{ratio:.3g} ({source}) = {steps} steps for {method}'s time", file=sys.stderr)
    return controls, {"equal_time": {"of": method, "ratio": round(ratio, 4), "source": source, "steps": steps}}



def _drive(cfg: SweepConfig, store: Store, ids: list[int], owner: str, backend, out: Path) -> dict:
    from tqdm import tqdm

    skipped = store.counts(ids)["done"]
    bar = tqdm(total=len(ids), initial=skipped, unit="run", desc="sweep", disable=not cfg.progress)
    inflight: dict[object, int] = {}  # backend handle -> run id
    suspects: set[int] = set()  # runs of a crashed pool, re-run alone
    first_errors: list[str] = []  # fail fast when the first runs all fail on the same bad input
    ran, t0, last_beat = 0, time.time(), time.time()
    try:
        while True:
            while len(inflight) < (1 if suspects else backend.slots):
                run = store.claim(sorted(suspects) if suspects else ids, owner, cfg.lease_s)
                if run is None and suspects and not inflight:
                    suspects.clear()  # the suspects were finished elsewhere: back to normal scheduling
                    continue
                if run is None:
                    break
                task = {"run_id": run.id, "config": dict(run.config), "run_dir": str(out / run.run_dir)}
                inflight[backend.submit(task)] = run.id
            if not inflight:
                break
            for handle, result in backend.wait(list(inflight), HEARTBEAT_S):
                run_id = inflight.pop(handle)
                if result.get("crashed", 0) > 1:  # died with others in the same pool: culprit unknown
                    store.release(run_id)
                    suspects.add(run_id)
                    continue
                ran += 1
                if result.get("ok") and (out / store.get(run_id).run_dir / "summary.json").exists():
                    store.finish(run_id, result.get("seconds"), result.get("prior_calls"))
                    suspects.discard(run_id)
                    bar.update(1)
                    first_errors.append("")
                    continue
                error = result.get("error") or "the run ended without writing summary.json"
                status = store.fail(run_id, error, cfg.retries, final=bool(result.get("user_error")))
                if status == "failed":
                    suspects.discard(run_id)
                    bar.update(1)
                if result.get("user_error"):
                    first_errors.append(error)
                if len(first_errors) >= 3 and first_errors[0] and len(set(first_errors[:3])) == 1:
                    raise UserError(f"the first runs all failed: {first_errors[0]}")
            if time.time() - last_beat > HEARTBEAT_S / 2:
                store.renew(owner, cfg.lease_s)
                last_beat = time.time()
    except BaseException:
        for run_id in inflight.values():  # interrupted: give the runs back without blaming them
            store.release(run_id)
        raise
    finally:
        bar.close()
    return {"ran": ran, "skipped": skipped, "seconds": time.time() - t0}
