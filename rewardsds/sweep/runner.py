"""The sweep driver: plan the runs, claim them from the store, execute them on local processes or Ray
tasks, and record every outcome.

Only this driver writes the store; workers run `execute` (one `run_generate` each, one torch thread)
and send back a small result dict. The driver renews its lease on the rows it holds every
`HEARTBEAT_S`, so a second driver can tell a live sweep from a dead one.

A worker process that dies (killed, out of memory) breaks the whole local pool, and every run in
flight fails with it. Blaming all of them would burn the retries of innocent runs, so the crashed
batch is re-run one run at a time: a crash there names its culprit exactly. The other way round, a
driver that dies (even by SIGKILL) takes its local workers with it (`_die_with_parent`).

With --ray the workers write the run folders themselves, so OUT must be storage that every node
can write (a shared file system); the SQLite store is opened by the driver alone.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from .store import RunSpec, Store, new_owner

if TYPE_CHECKING:
    from .config import SweepConfig

HEARTBEAT_S = 30.0
CRASHED = "the worker process died (killed, or out of memory)"
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

    _init_worker()  # Ray workers get no initializer
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


def _init_worker(driver_pid: int | None = None) -> None:
    """Parallel runs each get one thread (N workers x M threads on N cores only thrash) and keep
    model-loading progress bars out of the sweep's own bar. With ``driver_pid`` (the local pool's
    initializer), the worker also dies with its driver (`_die_with_parent`)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    if driver_pid is not None:
        _die_with_parent(driver_pid)


PARENT_POLL_S = 1.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid`` (the sweep driver) dies, even by SIGKILL.

    A pool worker blocks on its task queue, whose write end every worker holds too, so a killed
    driver would leave its workers (each with a prior loaded) waiting forever. On Linux the kernel
    sends SIGTERM when the parent dies (``prctl(PR_SET_PDEATHSIG)``; strictly when the *thread* that
    started the worker ends, and the driver starts its pool from the thread that runs the sweep,
    which outlives the pool). Everywhere, and as a backstop if SIGTERM is ignored, a daemon thread
    compares ``os.getppid()`` with the driver's pid every `PARENT_POLL_S` seconds: an orphan is
    re-parented, so its parent pid changes. A driver already gone before this ran is caught at once."""
    import signal
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl (e.g. a static build): the thread still works
            pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="rewardsds-parent-watch", daemon=True).start()


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
    backend = _make_backend(cfg, fn, len(ids) - store.counts(ids)["done"])
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


def _make_backend(cfg: SweepConfig, fn: Callable[[dict], dict], todo: int):
    if cfg.ray is not None:
        return RayBackend(cfg.ray, fn, cfg.workers, cfg.ray_gpus)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return LocalBackend(fn, cfg.workers or max(1, min(cores, todo)))


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


class LocalBackend:
    """A spawn-context ProcessPoolExecutor (fork would copy a driver that may hold CUDA or threads)
    whose workers end when the driver does."""

    def __init__(self, fn: Callable[[dict], dict], workers: int) -> None:
        self.fn, self.slots = fn, workers
        self.pool = None
        self.pool_of: dict = {}  # future -> the pool that runs it

    def _pool(self):
        if self.pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(self.slots, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init_worker, initargs=(os.getpid(),))
        return self.pool

    def submit(self, task: dict):
        from concurrent.futures.process import BrokenProcessPool

        try:
            fut = self._pool().submit(self.fn, task)
        except BrokenProcessPool:  # a worker died since the last wait(): its runs come back there,
            self.pool = None  # this one never started, so it goes to a fresh pool
            fut = self._pool().submit(self.fn, task)
        self.pool_of[fut] = self.pool
        return fut

    def wait(self, handles: list, timeout: float) -> list[tuple[object, dict]]:
        """Results of the handles done within timeout. A crash breaks the whole pool: every run it held
        comes back at once with ``crashed`` = how many died, so that a lone crash names its culprit."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        done, _ = wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        n_crashed = 1
        broken = [self.pool_of[f] for f in done if isinstance(f.exception(), BrokenProcessPool)]
        if broken:  # the rest of that pool's futures fail within moments; collect them together
            group = [h for h in handles if self.pool_of.get(h) is broken[0]]
            done = set(done) | wait(group, timeout=120).done
            n_crashed = sum(f.done() and isinstance(f.exception(), BrokenProcessPool) for f in group)
            broken[0].shutdown(wait=False, cancel_futures=True)
            if self.pool is broken[0]:
                self.pool = None  # a broken pool accepts nothing more: the next submit starts a fresh one
        out = []
        for fut in done:
            self.pool_of.pop(fut, None)
            exc = fut.exception()
            if exc is None:
                out.append((fut, fut.result()))
            elif isinstance(exc, BrokenProcessPool):
                out.append((fut, {"ok": False, "error": CRASHED, "crashed": n_crashed}))
            else:  # e.g. a result that did not unpickle
                out.append((fut, {"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


class RayBackend:
    """Ray tasks (1 CPU each, no automatic retries: the driver decides) on an existing cluster
    ('auto', 'ray://host:port') or on a fresh local instance ('local')."""

    def __init__(self, address: str, fn: Callable[[dict], dict], workers: int, gpus: float) -> None:
        try:
            import ray
        except ImportError as e:
            raise UserError("--ray needs Ray, an optional extra: pip install 'rewardsds[ray]'") from e
        self.ray, self.started = ray, False
        if not ray.is_initialized():
            local = address == "local"
            try:
                ray.init(address=None if local else address, num_cpus=(workers or None) if local else None,
                         include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise UserError(f"cannot connect to Ray at {address!r}: {e}") from e
            self.started = True
        opts = {"num_cpus": 1, "max_retries": 0, **({"num_gpus": gpus} if gpus else {})}
        self.remote = ray.remote(**opts)(fn)
        self.slots = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def submit(self, task: dict):
        return self.remote.remote(task)

    def wait(self, handles: list, timeout: float) -> list[tuple[object, dict]]:
        ready, rest = self.ray.wait(handles, num_returns=1, timeout=timeout)
        if ready and rest:
            ready += self.ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        out = []
        for ref in ready:
            try:
                out.append((ref, self.ray.get(ref)))
            except self.ray.exceptions.RayError as e:  # worker or node died, out of memory, ...
                out.append((ref, {"ok": False, "error": f"{CRASHED}: {type(e).__name__}: {e}"}))
        return out

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
