import pytest
import torch

from rewardsds.weighting import SCHEMES, Weighting, candidate_weights, ranks

R = torch.tensor([0.3, 2.0, -1.0, 0.5, 1.0, 0.0])  # ranking best->worst: 1, 4, 3, 0, 5, 2


def test_ranks():
    assert ranks(R).tolist() == [2, 5, 0, 3, 4, 1]
    assert ranks(torch.tensor([1.0, 1.0, 0.0])).tolist() == [2, 1, 0]  # ties: lower index ranks higher


def test_default_top2_bottom2():
    """+0.9 / -0.1 split over the top-2 / bottom-2 (the official code's group split; `each` puts them on each)."""
    w = Weighting()(R)
    assert w.tolist() == pytest.approx([0.0, 0.45, -0.05, 0.0, 0.45, -0.05])
    assert Weighting(scale="each")(R).tolist() == pytest.approx([0.0, 0.9, -0.1, 0.0, 0.9, -0.1])


def test_each_scheme_on_a_known_ranking():
    assert Weighting("wta")(R).tolist() == [0, 1, 0, 0, 0, 0]
    assert Weighting("topk", k=2)(R).tolist() == pytest.approx([0, 0.5, 0, 0, 0.5, 0])
    assert Weighting("best-worst")(R).tolist() == pytest.approx([0, 0.9, -0.1, 0, 0, 0])
    sm = Weighting("softmax", temperature=0.5, normalize="none")(R)
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
        assert w[-1] == pytest.approx(0.9 / k) and w[0] == pytest.approx(-0.1 / k)


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
    """The magnitudes the docstring states: mean sums to 1, top-bottom to 0.9 - 0.1 = 0.8 (group, default),
    or 2 x 0.9 - 2 x 0.1 = 1.6 with scale each (N >= 4)."""
    assert float(Weighting("mean")(R).sum()) == pytest.approx(1.0)
    assert float(Weighting()(R).sum()) == pytest.approx(0.8)
    assert float(Weighting(scale="each")(R).sum()) == pytest.approx(1.6)
    assert float(Weighting(scale="each")(R[:3]).sum()) == pytest.approx(0.8)


def test_mean_weighting_is_a_cli_and_guidance_option():
    from rewardsds.config import GenerateConfig, guidance_config, resolve

    g = guidance_config(resolve(GenerateConfig(prompt="a red circle", weighting="mean")))
    assert g.weighting.scheme == "mean"


def test_group_scale_splits_each_weight_over_its_group():
    """weight_scale=group (the official code): +0.9 and -0.1 shared by the top-2 and bottom-2, sum 0.8."""
    w = Weighting(scale="group")(R)
    assert w.tolist() == pytest.approx([0.0, 0.45, -0.05, 0.0, 0.45, -0.05])
    assert Weighting().scale == "group"
    assert float(w.sum()) == pytest.approx(0.8)
    assert Weighting("best-worst", scale="group")(R).tolist() == Weighting("best-worst")(R).tolist()  # k = 1
    with pytest.raises(ValueError):
        Weighting(scale="half")


def test_softmax_default_is_scale_free():
    """CLIPScore x 100 at temperature 1 was winner-takes-all with raw rewards; the default z-scores them."""
    clip = torch.tensor([28.1, 30.5, 26.0, 29.0])
    raw = Weighting("softmax", normalize="none")(clip)
    w = Weighting("softmax")(clip)
    assert float(raw.max()) > 0.75  # why raw rewards are not the default
    assert float(w.max()) < 0.6 and torch.allclose(w, Weighting("softmax")(clip / 100))
    assert w.argmax() == clip.argmax()


def test_weight_options_reach_guidance_and_scheme_only_fields_do_not_rename_runs():
    from rewardsds.config import GenerateConfig, guidance_config, resolve, run_id

    cfg = resolve(GenerateConfig(prompt="a red circle", weight_scale="group", softmax_normalize="rank"))
    g = guidance_config(cfg)
    assert (g.weighting.scale, g.weighting.normalize) == ("group", "rank")
    # top-bottom ignores the softmax input, so it does not tell top-bottom runs apart
    plain = resolve(GenerateConfig(prompt="a red circle", weight_scale="group"))
    assert run_id(cfg) == run_id(plain)
    # ... but softmax runs with other inputs are other runs; each of the two scales is its own run
    sm = [resolve(GenerateConfig(prompt="a red circle", weighting="softmax", softmax_normalize=n))
          for n in ("zscore", "none")]
    assert run_id(sm[0]) != run_id(sm[1])
    assert run_id(plain) != run_id(resolve(GenerateConfig(prompt="a red circle", weight_scale="each")))
