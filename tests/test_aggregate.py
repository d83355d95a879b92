"""Aggregation against hand-computed numbers and the properties a bootstrap CI must have."""

import numpy as np
import pytest

from rewardsds.eval.aggregate import (
    Unit,
    aggregate,
    bootstrap_mean,
    cost_table,
    metric_table,
    paired_difference,
    resolve_baseline,
    variant_labels,
)


def test_two_point_sample_by_hand():
    # x = (0, 1): a replicate mean is 0 (p=1/4), 0.5 (1/2) or 1 (1/4): the 2.5% / 97.5% quantiles are 0 and 1.
    e = bootstrap_mean([0.0, 1.0])
    assert (e.mean, e.lo, e.hi, e.n) == (0.5, 0.0, 1.0, 2)


def test_skewed_sample_by_hand():
    # x = (0, 0, 0, 1): P(m* = 1) = 1/256 < 2.5% < P(m* >= 0.75) = 13/256, and P(m* = 0) = 81/256 > 2.5%,
    # so the 95% CI is exactly [0, 0.75].
    e = bootstrap_mean([0.0, 0.0, 0.0, 1.0])
    assert e.mean == 0.25 and e.lo == 0.0 and e.hi == 0.75


def test_ci_contains_mean_shrinks_with_n_and_is_deterministic():
    rng = np.random.default_rng(1)
    small, big = rng.normal(3.0, 1.0, 10), rng.normal(3.0, 1.0, 400)
    es, eb = bootstrap_mean(small), bootstrap_mean(big)
    for e in (es, eb):
        assert e.lo <= e.mean <= e.hi
    assert eb.half_width < es.half_width / 3  # ~ 1/sqrt(n): sqrt(40) ~ 6.3
    assert bootstrap_mean(small) == es  # fixed seed
    assert bootstrap_mean(small, seed=1) != es
    # the normal-theory half-width 1.96 s / sqrt(n) is what the bootstrap should roughly reproduce
    assert eb.half_width == pytest.approx(1.96 * big.std() / np.sqrt(big.size), rel=0.15)


def test_degenerate_samples():
    e = bootstrap_mean([2.5])
    assert (e.mean, e.lo, e.hi, e.n) == (2.5, 2.5, 2.5, 1)
    with pytest.raises(ValueError):
        bootstrap_mean([])
    for level in (0.0, 1.0, 95.0, float("nan")):
        with pytest.raises(ValueError, match="CI level"):
            bootstrap_mean([1.0, 2.0], level=level)
    with pytest.raises(ValueError, match="replicates"):
        bootstrap_mean([1.0, 2.0], b=0)


def test_cluster_bootstrap_by_hand():
    # Two prompts, two seeds each: (0, 0) and (1, 1). Resampling prompts, a replicate mean is 0 (p=1/4),
    # 0.5 (1/2) or 1 (1/4): the CI is [0, 1].
    e = bootstrap_mean([0.0, 0.0, 1.0, 1.0], clusters=["a", "a", "b", "b"])
    assert (e.mean, e.lo, e.hi, e.n) == (0.5, 0.0, 1.0, 4)
    # equal-sized clusters: the cluster bootstrap is exactly the plain bootstrap of the cluster means
    rng = np.random.default_rng(2)
    means = rng.normal(0.0, 1.0, 12)
    labels = [f"p{i:02d}" for i in range(12)]
    values = np.repeat(means, 3) + np.tile([-0.1, 0.0, 0.1], 12)
    clustered = bootstrap_mean(values, clusters=np.repeat(labels, 3))
    plain = bootstrap_mean(means)
    assert (clustered.lo, clustered.hi) == pytest.approx((plain.lo, plain.hi)) and clustered.n == 36
    # ... and wider than treating the 36 correlated runs as independent
    assert clustered.half_width > 1.4 * bootstrap_mean(values).half_width
    with pytest.raises(ValueError, match="cluster labels"):
        bootstrap_mean([1.0, 2.0], clusters=["a"])


def test_tables_resample_prompts_when_a_prompt_has_several_seeds():
    base = {(p, s): float(i) for i, p in enumerate("abcdefgh") for s in (0, 1)}
    a = {k: v + (1.0 if k[0] in "abcd" else -1.0) for k, v in base.items()}  # the seeds of a prompt agree
    d = paired_difference(a, base)
    per_prompt = bootstrap_mean([1.0] * 4 + [-1.0] * 4)  # 8 prompts, one difference each
    assert d.n == 16 and (d.lo, d.hi) == pytest.approx((per_prompt.lo, per_prompt.hi))


def test_paired_difference_is_exact_for_constant_offsets_and_uses_common_units():
    base = {("p1", 0): 1.0, ("p2", 0): 5.0, ("p3", 0): -2.0, ("p4", 0): 9.0}
    a = {k: v + 0.5 for k, v in base.items() if k != ("p4", 0)}
    d = paired_difference(a, base)
    assert d.n == 3 and d.mean == pytest.approx(0.5) and d.lo == pytest.approx(0.5) and d.hi == pytest.approx(0.5)
    assert paired_difference({("x", 0): 1.0}, base) is None


def _units():
    # hand-made: sds scores 10, 20, 30, 40; reward-sds exactly +2 on every (prompt, seed)
    out = []
    for i, (p, s) in enumerate([("a", 0), ("a", 1), ("b", 0), ("b", 1)]):
        out.append(Unit("sds", p, s, {"judge": 10.0 * (i + 1)}, seconds=1.0, prior_calls=300))
        out.append(Unit("reward-sds", p, s, {"judge": 10.0 * (i + 1) + 2, "clip": 20.0}, seconds=3.0,
                        prior_calls=1200))
    return out


def test_metric_table_by_hand():
    rows = {r["variant"]: r for r in metric_table(_units(), "judge", "sds")}
    assert list(rows) == ["sds", "reward-sds"]  # paper order
    assert rows["sds"]["mean"] == 25.0 and rows["reward-sds"]["mean"] == 27.0
    assert rows["sds"]["diff"] is None
    diff = rows["reward-sds"]["diff"]
    assert diff["mean"] == pytest.approx(2.0) and diff["hi"] - diff["lo"] == pytest.approx(0.0, abs=1e-9)
    # the unpaired CI of the same data is wide: pairing is what makes the +2 visible
    assert rows["reward-sds"]["hi"] - rows["reward-sds"]["lo"] > 10


def test_aggregate_and_cost():
    agg = aggregate(_units(), baseline="sds", b=500)
    assert agg["baseline"] == "sds" and set(agg["metrics"]) == {"clip", "judge"}
    assert [r["variant"] for r in agg["metrics"]["clip"]] == ["reward-sds"]  # sds has no clip score
    cost = {r["variant"]: r for r in cost_table(_units())}
    assert cost["sds"]["prior_calls"]["mean"] == 300 and cost["reward-sds"]["seconds"]["mean"] == 3.0


def test_variant_labels_and_baseline():
    configs = {1: {"method": "sds", "prompt": "a", "seed": 0, "steps": 300},
               2: {"method": "sds", "prompt": "b", "seed": 1, "steps": 300},
               3: {"method": "reward-sds", "prompt": "a", "seed": 0, "n_noises": 2, "reward": "world-clip"},
               4: {"method": "reward-sds", "prompt": "a", "seed": 0, "n_noises": 8, "reward": "world-clip"}}
    labels = variant_labels(configs)
    assert labels == {1: "sds", 2: "sds", 3: "reward-sds [n_noises=2]", 4: "reward-sds [n_noises=8]"}
    assert resolve_baseline("sds", labels.values()) == "sds"
    assert resolve_baseline("reward-sds", labels.values()) is None  # ambiguous
    assert resolve_baseline("reward-sds [n_noises=8]", labels.values()) == "reward-sds [n_noises=8]"


def test_a_run_made_before_the_sampled_start_reads_as_init_samples_0():
    """Runs saved before --init-samples existed lack the field: they held 0, for every method."""
    configs = {1: {"method": "sds", "prompt": "a", "seed": 0, "cfg": 20.0},
               2: {"method": "sds", "prompt": "a", "seed": 0, "cfg": 7.5, "init_samples": 4}}
    assert variant_labels(configs) == {1: "sds [cfg=20, init_samples=0]", 2: "sds [cfg=7.5, init_samples=4]"}


def test_markdown_table_by_hand():
    from rewardsds.eval.tables import format_markdown

    md = format_markdown(aggregate(_units(), baseline="sds", b=500)).splitlines()
    assert md[0] == "| variant | n | clip | judge | s / image | prior calls / image |"
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md[2:4]}
    assert rows["sds"] == "| sds | 4 | – | 25.0 [15.0, 35.0] | 1.0 | 300 |"
    # reward-sds is exactly +2 on every unit: a zero-width CI that excludes 0, so the difference is bold
    assert "27.0 [" in rows["reward-sds"] and "**Δ +2 [+2, +2]**" in rows["reward-sds"]
    assert rows["reward-sds"].endswith("| 3.0 | 1200 |") and "paired difference against `sds`" in md[-1]


def test_weights_fingerprint_is_named_only_when_it_tells_runs_apart():
    def conf(reward, weights, seed=0):
        return {"method": "reward-sds", "prompt": "a", "seed": seed, "reward": reward, "weights": weights}

    by_reward = variant_labels({1: conf("world-clip", "aa"), 2: conf("world-aesthetic", "bb")})
    assert by_reward == {1: "reward-sds [reward=world-clip]", 2: "reward-sds [reward=world-aesthetic]"}
    retrained = variant_labels({1: conf("world-clip", "aa"), 2: conf("world-clip", "cc")})
    assert retrained == {1: "reward-sds [weights=aa]", 2: "reward-sds [weights=cc]"}
    both = variant_labels({1: conf("world-clip", "aa"), 2: conf("world-clip", "cc"), 3: conf("x", "dd")})
    assert both[1] == "reward-sds [reward=world-clip, weights=aa]" and both[3] == "reward-sds [reward=x, weights=dd]"
