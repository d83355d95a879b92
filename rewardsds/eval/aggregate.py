"""Pure aggregation of per-run scores into the paper's tables: means with bootstrap CIs, paired
differences against a baseline, and cost per image. No I/O, no models: numbers in, numbers out.

Statistics (percentile bootstrap, Efron & Tibshirani 1993, ch. 13):

    units u = 1..n: one (prompt, seed) pair each, score x_u
    mean       m = (1/n) sum_u x_u
    replicate  m*_b = (1/n) sum_u x_{U_bu},  U_bu ~ Uniform{1..n} i.i.d.,  b = 1..B
    95% CI     [q_0.025(m*), q_0.975(m*)]

Several seeds per prompt are not independent draws: the seeds of one prompt share its difficulty.
Resampling (prompt, seed) units as if i.i.d. would then understate the CI, so units are grouped by
prompt and the *prompts* are resampled (cluster bootstrap, Davison & Hinkley 1997, sec. 3.8):

    clusters c = 1..C with sums S_c and sizes n_c
    replicate  m*_b = sum_j S_{C_bj} / sum_j n_{C_bj},  C_bj ~ Uniform{1..C} i.i.d., j = 1..C

With one seed per prompt this is the plain bootstrap above.

Paired difference of variant A against baseline Z over the units both have:
d_u = x_u^A - x_u^Z, reported as mean(d) with the bootstrap CI of mean(d). Pairing removes the
between-prompt variance that both share, so the CI is much tighter than one of two separate means.
The generator is seeded (default 0), so the same numbers give the same CI on every machine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

B_DEFAULT = 2000
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")
LEVEL = 0.95
# Config keys that vary inside one method because they are the sweep's axes, not its variants.
AXES = ("prompt", "seed")
# Config keys that follow from others (the weights' fingerprint follows from --prior and --reward).
DERIVED = ("weights",)
# The controls (see `control_label`): what their labels end with, and their kind.
EQUAL_TIME, EQUAL_COMPUTE = "equal time", "equal compute"
CONTROL_SUFFIXES = (f" ({EQUAL_COMPUTE})", f" ({EQUAL_TIME} to ")


@dataclass(frozen=True)
class Estimate:
    mean: float
    lo: float
    hi: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2


@dataclass(frozen=True)
class Unit:
    """One finished run: its variant label, its (prompt, seed) unit, scores and cost per image."""

    variant: str
    prompt: str
    seed: int
    scores: Mapping[str, float]
    seconds: float | None = None
    prior_calls: float | None = None
    control: str | None = None
    """EQUAL_TIME or EQUAL_COMPUTE when the run is a control, else None"""
    control_of: str | None = None
    """the variant label of the method the control is for (None: not among these runs)"""

    @property
    def key(self) -> tuple[str, int]:
        return (self.prompt, self.seed)


def bootstrap_mean(values: Sequence[float], b: int = B_DEFAULT, seed: int = 0, level: float = LEVEL,
                   clusters: Sequence | None = None) -> Estimate:
    """Mean and percentile-bootstrap CI (see the module docstring): over i.i.d. units, or, with
    ``clusters`` (one label per value, e.g. its prompt), over whole clusters."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"bootstrap_mean needs a non-empty 1-d sample, got shape {x.shape}")
    if b < 1:
        raise ValueError(f"bootstrap replicates must be >= 1, got {b}")
    if not 0 < level < 1:
        raise ValueError(f"the CI level must be in (0, 1), got {level}")
    if clusters is not None and len(clusters) != x.size:
        raise ValueError(f"{len(clusters)} cluster labels for {x.size} values")
    mean = float(x.mean())
    if x.size == 1 or np.all(x == x[0]):  # every replicate equals the mean
        return Estimate(mean, mean, mean, int(x.size))
    rng = np.random.default_rng(seed)
    if clusters is None:
        reps = x[rng.integers(0, x.size, size=(b, x.size))].mean(axis=1)
    else:
        _, group = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
        sums, sizes = np.bincount(group, weights=x), np.bincount(group).astype(np.float64)
        pick = rng.integers(0, sums.size, size=(b, sums.size))
        reps = sums[pick].sum(axis=1) / sizes[pick].sum(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(reps, [alpha, 1 - alpha])
    return Estimate(mean, float(lo), float(hi), int(x.size))


def paired_difference(a: Mapping[tuple, float], z: Mapping[tuple, float], b: int = B_DEFAULT, seed: int = 0,
                      level: float = LEVEL) -> Estimate | None:
    """mean(a_u - z_u) over the units in both, with its bootstrap CI resampling prompts (a unit key's
    first element); None when they share no unit."""
    keys = sorted(set(a) & set(z))
    if not keys:
        return None
    return bootstrap_mean([a[k] - z[k] for k in keys], b=b, seed=seed, level=level, clusters=_prompts_of(keys))


def control_kind(conf: dict) -> str | None:
    """EQUAL_TIME for a sweep's --equal-time-of control run, EQUAL_COMPUTE for a reward-* run with
    uniform weights (--weighting mean), else None."""
    if isinstance(conf.get("equal_time"), dict):
        return EQUAL_TIME
    if str(conf.get("method", "")).startswith("reward-") and conf.get("weighting") == "mean":
        return EQUAL_COMPUTE
    return None


def _family(conf: dict) -> str:
    """The label's head: the method, or for an equal-time control what it is ('sds ×3.33 steps (equal
    time to reward-sds)', the factor being its steps over the steps of the runs it was scaled from)."""
    et = conf.get("equal_time")
    if isinstance(et, dict):
        base = et.get("base_steps") or 0
        scale = f"×{conf.get('steps', 0) / base:.3g} steps" if base else f"{conf.get('steps')} steps"
        return f"{conf['method']} {scale} ({EQUAL_TIME} to {et.get('of', '?')})"
    return conf["method"]


def variant_labels(configs: Mapping[int, dict]) -> dict[int, str]:
    """A readable label per run: its method, plus the config fields that differ between runs of that
    method (e.g. ``reward-sds [n_noises=8]``). ``configs``: run id -> canonical config with 'method'.
    Controls say what they are: ``reward-sds [weighting=mean] (equal compute)`` (weighting always
    named), ``sds ×3.33 steps (equal time to reward-sds)`` (a family of its own, apart from sds)."""
    from ..config import IMPLICIT_BEFORE, SCHEME_ONLY

    # a run without a later option held its earlier implicit value; an option of one weighting scheme
    # (weight_scale of top-bottom, softmax_*) tells apart only the runs of that scheme
    # (the sampled start's options belong to every text-to-image run, the others to reward-* runs)
    configs = {rid: {**{k: v for k, v in IMPLICIT_BEFORE.items()
                        if k not in conf and ("weighting" in conf or k.startswith("init_sample"))}, **conf}
               for rid, conf in configs.items()}
    configs = {rid: {k: v for k, v in conf.items()
                     if not (k in SCHEME_ONLY and conf.get("weighting") != SCHEME_ONLY[k][0])}
               for rid, conf in configs.items()}
    by_method: dict[str, list[int]] = {}
    for rid, conf in configs.items():
        by_method.setdefault(_family(conf), []).append(rid)
    labels = {}
    for method, rids in by_method.items():
        keys = sorted({k for r in rids for k in configs[r]} - set(AXES) - {"method"})
        varying = [k for k in keys if len({_hashable(configs[r].get(k)) for r in rids
                                           if k in configs[r] or k not in SCHEME_ONLY}) > 1]
        # 'weights' (the models' fingerprint) changes with --reward; name it only when it is what tells
        # runs apart (the same settings with retrained weights)
        rest = [k for k in varying if k not in DERIVED]
        groups: dict[tuple, set] = {}
        for r in rids:
            groups.setdefault(tuple(_hashable(configs[r].get(k)) for k in rest), set()).update(
                _hashable(configs[r].get(k)) for k in DERIVED if k in varying)
        if all(len(v) <= 1 for v in groups.values()):
            varying = rest
        for r in rids:
            kind = control_kind(configs[r])
            shown = varying + (["weighting"] if kind == EQUAL_COMPUTE and "weighting" not in varying else [])
            extra = ", ".join(f"{k}={_short(configs[r].get(k))}" for k in shown
                              if k in configs[r] or k not in SCHEME_ONLY)
            labels[r] = (f"{method} [{extra}]" if extra else method) + (f" ({kind})" if kind == EQUAL_COMPUTE else "")
    return labels


def is_control(label: str) -> bool:
    return any(s in label for s in CONTROL_SUFFIXES)


def resolve_baseline(baseline: str, variants: Iterable[str]) -> str | None:
    """The variant meant by --baseline: an exact label, or a method name with exactly one variant."""
    variants = sorted(set(variants))
    if baseline in variants:
        return baseline
    matches = [v for v in variants if v.split(" [", 1)[0] == baseline]
    return matches[0] if len(matches) == 1 else None


def metric_table(units: Sequence[Unit], metric: str, baseline: str | None, b: int = B_DEFAULT,
                 seed: int = 0) -> list[dict]:
    """One row per variant that has ``metric``: mean +- CI, and the paired difference to the baseline."""
    per_variant: dict[str, dict[tuple, float]] = {}
    for u in units:
        if metric in u.scores and np.isfinite(u.scores[metric]):
            per_variant.setdefault(u.variant, {})[u.key] = float(u.scores[metric])
    rows = []
    base = per_variant.get(baseline) if baseline else None
    for variant in sorted(per_variant, key=_variant_order):
        vals = per_variant[variant]
        keys = sorted(vals)
        est = bootstrap_mean([vals[k] for k in keys], b=b, seed=seed, clusters=_prompts_of(keys))
        diff = None
        if base is not None and variant != baseline:
            diff = paired_difference(vals, base, b=b, seed=seed)
        rows.append({"variant": variant, **asdict(est),
                     "diff": asdict(diff) if diff is not None else None})
    return rows


def cost_table(units: Sequence[Unit], b: int = B_DEFAULT, seed: int = 0) -> list[dict]:
    """Seconds and prior (network) calls per image, per variant, with bootstrap CIs."""
    rows = []
    for variant in sorted({u.variant for u in units}, key=_variant_order):
        row = {"variant": variant}
        for field in ("seconds", "prior_calls"):
            vals = [getattr(u, field) for u in units if u.variant == variant and getattr(u, field) is not None]
            row[field] = asdict(bootstrap_mean(vals, b=b, seed=seed)) if vals else None
        rows.append(row)
    return rows


def control_table(units: Sequence[Unit], metrics: Sequence[str], b: int = B_DEFAULT, seed: int = 0) -> list[dict]:
    """One row per control whose method is among the units: the cost of both per image (means over
    their runs) and its ratio control / method (equal time: ~1 in seconds; equal compute: ~1 in prior
    calls), and per metric the paired gain of the method over its control (method - control)."""
    of = {u.variant: (u.control, u.control_of) for u in units if u.control and u.control_of}
    rows = []
    for variant in sorted(of, key=_variant_order):
        kind, target = of[variant]
        mine = [u for u in units if u.variant == variant]
        theirs = [u for u in units if u.variant == target]
        if not theirs:
            continue
        row: dict = {"variant": variant, "control": kind, "of": target}
        for field in ("seconds", "prior_calls"):
            a = [getattr(u, field) for u in mine if getattr(u, field) is not None]
            z = [getattr(u, field) for u in theirs if getattr(u, field) is not None]
            row[field] = float(np.mean(a)) if a else None
            row[f"of_{field}"] = float(np.mean(z)) if z else None
            row[f"{field}_ratio"] = row[field] / row[f"of_{field}"] if a and z and np.mean(z) > 0 else None
        row["gain"] = {}
        for m in metrics:
            vals = {name: {u.key: float(u.scores[m]) for u in group if m in u.scores and np.isfinite(u.scores[m])}
                    for name, group in (("control", mine), ("method", theirs))}
            d = paired_difference(vals["method"], vals["control"], b=b, seed=seed)
            row["gain"][m] = asdict(d) if d is not None else None
        rows.append(row)
    return rows


def aggregate(units: Sequence[Unit], metrics: Sequence[str] | None = None, baseline: str = "sds",
              b: int = B_DEFAULT, seed: int = 0) -> dict:
    """Everything a report needs, JSON-able: per-metric tables, cost, and which variant is the baseline."""
    if metrics is None:
        metrics = sorted({m for u in units for m in u.scores})
    base = resolve_baseline(baseline, (u.variant for u in units))
    return {"baseline": base, "bootstrap": {"replicates": b, "seed": seed, "level": LEVEL},
            "metrics": {m: metric_table(units, m, base, b=b, seed=seed) for m in metrics},
            "cost": cost_table(units, b=b, seed=seed), "controls": control_table(units, metrics, b=b, seed=seed)}


def _variant_order(label: str) -> tuple:
    """Plain methods before their reward-* versions, in the paper's order; variants alphabetically;
    the controls after all of them, in the same order."""
    order = ("sds", "reward-sds", "vsd", "reward-vsd", "bridge", "reward-bridge", "dds", "reward-dds")
    method = label.split(" [", 1)[0].split(" ", 1)[0]
    # natural order of the numbers in the label: n_noises=2, 4, 8 (not 2, 8, 4 or 15 before 1)
    parts = tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(_NUMBER.split(label)))
    return (is_control(label), order.index(method) if method in order else len(order), method, parts)


def _prompts_of(keys: Sequence[tuple]) -> list | None:
    """Cluster labels for (prompt, seed) keys: the prompt; None (plain bootstrap) when every prompt
    has one seed, so single-seed sweeps keep the textbook estimator."""
    prompts = [k[0] for k in keys]
    return prompts if len(set(prompts)) < len(prompts) else None


def _hashable(v):
    return repr(v) if isinstance(v, (list, dict)) else v


def _short(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)
