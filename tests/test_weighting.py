import pytest
import torch

from rewardsds.weighting import SCHEMES, Weighting, candidate_weights, ranks

R = torch.tensor([0.3, 2.0, -1.0, 0.5, 1.0, 0.0])  # ranking best->worst: 1, 4, 3, 0, 5, 2


def test_ranks():
    assert ranks(R).tolist() == [2, 5, 0, 3, 4, 1]
    assert ranks(torch.tensor([1.0, 1.0, 0.0])).tolist() == [2, 1, 0]  # ties: lower index ranks higher


def test_default_top2_bottom2():
    w = Weighting()(R)
    assert w.tolist() == pytest.approx([0.0, 0.9, -0.1, 0.0, 0.9, -0.1])


def test_each_scheme_on_a_known_ranking():
    assert Weighting("wta")(R).tolist() == [0, 1, 0, 0, 0, 0]
    assert Weighting("topk", k=2)(R).tolist() == pytest.approx([0, 0.5, 0, 0, 0.5, 0])
    assert Weighting("best-worst")(R).tolist() == pytest.approx([0, 0.9, -0.1, 0, 0, 0])
    sm = Weighting("softmax", temperature=0.5)(R)
    assert sm.tolist() == pytest.approx(torch.softmax(R / 0.5, 0).tolist())
    g = torch.Generator().manual_seed(0)
    rnd = Weighting("random")(R, g)
    assert rnd.sum() == 1 and (rnd > 0).sum() == 1


@pytest.mark.parametrize("scheme", ["wta", "topk", "best-worst", "top-bottom"])
def test_rank_schemes_ignore_reward_scale(scheme):
    w = Weighting(scheme)
    assert torch.equal(w(R), w(R * 37.0 + 5.0))


def test_softmax_normalisations_are_scale_free():
    for norm in ("zscore", "rank"):
        w = Weighting("softmax", normalize=norm)
        assert torch.allclose(w(R), w(R * 100 + 3))
    rank = Weighting("softmax", normalize="rank")(R)
    assert rank[1] > rank[4] > rank[3] > rank[0] > rank[5] > rank[2]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_small_n_never_overlaps(n, scheme):
    r = torch.arange(n, dtype=torch.float32)
    w = candidate_weights(r, Weighting(scheme), torch.Generator().manual_seed(0))
    assert w.shape == (n,) and torch.isfinite(w).all()
    if n == 1:
        assert w.tolist() == [1.0]
    if scheme == "top-bottom" and n > 1:
        k = min(2, n // 2)
        assert (w > 0).sum() == k and (w < 0).sum() == k  # top and bottom groups are disjoint
        assert w[-1] == pytest.approx(0.9) and w[0] == pytest.approx(-0.1)


def test_bad_configs():
    with pytest.raises(ValueError):
        Weighting("nope")
    with pytest.raises(ValueError):
        Weighting(k=0)
    with pytest.raises(ValueError):
        Weighting("softmax", temperature=0)
    with pytest.raises(ValueError):
        candidate_weights(torch.tensor([1.0, float("nan")]), Weighting())


@pytest.mark.parametrize("n", [1, 2, 4, 7])
def test_mean_is_uniform_and_ignores_the_rewards(n):
    """`mean` (the equal-compute control): 1/N on every candidate, whatever the rewards, summing to 1."""
    g = torch.Generator().manual_seed(0)
    r = torch.randn(n, generator=g)
    w = Weighting("mean")(r)
    assert w.tolist() == pytest.approx([1.0 / n] * n) and float(w.sum()) == pytest.approx(1.0)
    assert torch.equal(w, Weighting("mean")(-r * 10 + 3))
    assert "mean" in SCHEMES


def test_weight_sums_mean_vs_top_bottom():
    """The magnitudes the docstring states: mean sums to 1, top-bottom to 2 x 0.9 - 2 x 0.1 = 1.6 (N >= 4)."""
    assert float(Weighting("mean")(R).sum()) == pytest.approx(1.0)
    assert float(Weighting()(R).sum()) == pytest.approx(1.6)
    assert float(Weighting()(R[:3]).sum()) == pytest.approx(0.8)


def test_mean_weighting_is_a_cli_and_guidance_option():
    from rewardsds.config import GenerateConfig, guidance_config, resolve

    g = guidance_config(resolve(GenerateConfig(prompt="a red circle", weighting="mean")))
    assert g.weighting.scheme == "mean"
