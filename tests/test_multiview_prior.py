"""The multi-view prior (`rewardsds.priors.multiview`): camera convention, the view-folding attention, the
loader's errors, and the candidates ordered per set of views (one candidate = V consecutive rows)."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from _builders import build_tiny_multiview_prior, tiny_multiview_unet

from rewardsds.candidates import by_image, candidate_rows, noise_candidates, to_rows
from rewardsds.losses import GuidanceConfig, build_guidance
from rewardsds.priors.diffusers_prior import DiffusersPrior, PriorLoadError
from rewardsds.priors.multiview import (
    CAMERA_UNET_KWARGS,
    MultiViewAttnProcessor,
    MultiViewPrior,
    camera_input,
    folder_views,
    set_multiview_attention,
)
from rewardsds.render import orbit_cameras, sample_camera_sets
from rewardsds.rewards import CallableReward
from rewardsds.sampling import sample
from rewardsds.world3d.evaluate_mv import sample_views

PROMPT = "a red cube"


@pytest.fixture(scope="module")
def mv_dir(tmp_path_factory):
    return build_tiny_multiview_prior(tmp_path_factory.mktemp("tiny_mv"))


@pytest.fixture(scope="module")
def mv(mv_dir):
    return MultiViewPrior.from_pretrained(mv_dir)


def _ring(sets: int = 1, seed: int = 0) -> torch.Tensor:
    return sample_camera_sets(sets, 4, generator=torch.Generator().manual_seed(seed)).c2w


# --- the camera convention, written down once ---------------------------------------------------------------

def test_camera_input_is_the_unit_distance_c2w_of_the_projects_convention():
    """Azimuth 0 is the front on +z, azimuth 90 on +x, y up; the camera looks along its -z at the origin; the
    network reads the c2w with its translation scaled to unit length, flattened row by row."""
    cams = orbit_cameras([0.0, 0.0, 90.0], [0.0, 90.0, 0.0], [3.0, 2.0, 3.0], 45.0)
    x = camera_input(cams.c2w)
    assert x.shape == (3, 16)
    m = x.view(3, 4, 4)
    torch.testing.assert_close(m[0], torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1]]))
    torch.testing.assert_close(m[1, :3, 3], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6, rtol=0)  # azimuth 90: +x
    torch.testing.assert_close(m[2, :3, 3], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6, rtol=0)  # elevation 90: up
    forward = -cams.c2w[:, :3, 2]  # the camera looks along -z ...
    torch.testing.assert_close(forward, -torch.nn.functional.normalize(cams.eye, dim=-1))  # ... at the origin
    # the distance is not an input
    torch.testing.assert_close(camera_input(orbit_cameras(20.0, 30.0, 2.5, 40.0).c2w),
                               camera_input(orbit_cameras(20.0, 30.0, 3.0, 60.0).c2w))
    with pytest.raises(ValueError, match="4, 4"):
        camera_input(torch.eye(4))


def test_camera_sets_are_rings_of_one_elevation_in_set_major_order():
    cams = sample_camera_sets(3, 4, generator=torch.Generator().manual_seed(1))
    assert len(cams) == 12
    for s in range(3):
        rows = slice(4 * s, 4 * s + 4)
        for name in ("elevation", "distance", "fov"):
            assert getattr(cams, name)[rows].unique().numel() == 1
        steps = (cams.azimuth[rows].diff() % 360.0)
        torch.testing.assert_close(steps, torch.full((3,), 90.0))
    assert (cams.azimuth >= -180).all() and (cams.azimuth < 180).all()


# --- the view-folding attention -----------------------------------------------------------------------------

def test_the_processor_is_plain_attention_with_one_view():
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    torch.manual_seed(0)
    attn = Attention(16, heads=2, dim_head=8)
    h, ctx = torch.randn(4, 5, 16), torch.randn(4, 3, 16)
    for enc in (None, ctx):
        torch.testing.assert_close(MultiViewAttnProcessor(1)(attn, h, enc), AttnProcessor2_0()(attn, h, enc))
    # with 4 views, self-attention equals plain attention over the views' tokens side by side
    folded = AttnProcessor2_0()(attn, h.reshape(1, 20, 16)).reshape(4, 5, 16)
    torch.testing.assert_close(MultiViewAttnProcessor(4)(attn, h), folded)
    torch.testing.assert_close(MultiViewAttnProcessor(4)(attn, h, ctx), AttnProcessor2_0()(attn, h, ctx))
    with pytest.raises(ValueError, match="multiple of V"):
        MultiViewAttnProcessor(4)(attn, h[:3])


def test_a_unet_with_one_view_processors_is_the_stock_unet():
    unet = tiny_multiview_unet().eval()
    x, t, ctx, cams = torch.randn(4, 3, 8, 8), torch.tensor([10, 200, 500, 900]), torch.randn(4, 5, 32), \
        camera_input(_ring())
    with torch.no_grad():
        stock = unet(x, t, encoder_hidden_states=ctx, class_labels=cams).sample
        set_multiview_attention(unet, 1)
        one = unet(x, t, encoder_hidden_states=ctx, class_labels=cams).sample
    torch.testing.assert_close(one, stock)


def test_views_attend_to_each_other_only_with_the_multiview_processor(mv):
    from diffusers.models.attention_processor import AttnProcessor2_0

    emb = mv.embed([PROMPT] * 4).with_cameras(_ring())
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    x2 = x.clone()
    x2[2] += 1.0  # change view 2 only
    t = torch.full((4,), 500)

    def view0(prior, xs):
        with torch.no_grad():
            return prior.predict_eps(xs, t, emb).cond[0]

    assert (view0(mv, x) - view0(mv, x2)).abs().max() > 1e-4, "view 0 ignores view 2"
    try:
        mv.unet.set_attn_processor(AttnProcessor2_0())  # stock attention: every view on its own
        torch.testing.assert_close(view0(mv, x), view0(mv, x2))
    finally:
        mv.set_views(4)
    # the camera is an input: the same views told other cameras predict otherwise
    with torch.no_grad():
        other = mv.predict_eps(x, t, emb.with_cameras(_ring(seed=5))).cond
        assert (other - mv.predict_eps(x, t, emb).cond).abs().max() > 1e-4


def test_rows_must_be_whole_sets_of_views_with_their_cameras(mv):
    t = torch.full((4,), 300)
    with pytest.raises(ValueError, match="multiple of 4"):
        mv.predict_eps(torch.randn(3, 3, 8, 8), t[:3], mv.embed([PROMPT] * 3).with_cameras(_ring()[:3]))
    with pytest.raises(ValueError, match="one camera per row"):
        mv.predict_eps(torch.randn(4, 3, 8, 8), t, mv.embed([PROMPT] * 4))
    with pytest.raises(ValueError, match="one per row"):
        mv.embed([PROMPT] * 4).with_cameras(_ring(2))


def test_the_one_sampler_draws_the_four_views_of_a_sample_together(mv):
    """`sampling.sample` with one camera per row: 4 rows are one sample of 4 views, denoised jointly (view 0
    changes when only view 3's camera does); `evaluate_mv.sample_views` is that call, one caption a sample."""
    cams = _ring()
    images = sample(mv, [PROMPT] * 4, 3, 4.0, torch.Generator().manual_seed(0), cameras=cams)
    assert images.shape == (4, 3, 8, 8) and images.min() >= 0 and images.max() <= 1
    torch.testing.assert_close(sample_views(mv, [PROMPT], cams, 3, 4.0, torch.Generator().manual_seed(0)), images,
                               rtol=0, atol=0)
    moved = cams.clone()
    moved[3] = _ring(seed=5)[3]
    other = sample(mv, [PROMPT] * 4, 3, 4.0, torch.Generator().manual_seed(0), cameras=moved)
    assert (other[0] - images[0]).abs().max() > 1e-4, "view 0 ignores view 3"
    with pytest.raises(ValueError, match="one camera per row"):
        sample(mv, [PROMPT] * 4, 3, 4.0)
    with pytest.raises(ValueError, match="need 8 cameras"):
        sample_views(mv, [PROMPT] * 2, cams)


# --- the loader ----------------------------------------------------------------------------------------------

def test_the_loader_reads_the_family_and_installs_the_view_attention(mv, mv_dir):
    assert mv.views_per_sample == 4 == folder_views(mv_dir) and mv.family == "RewardSDSWorld3DMultiViewPrior"
    procs = mv.unet.attn_processors
    assert all(isinstance(p, MultiViewAttnProcessor) == k.endswith("attn1.processor") for k, p in procs.items())
    assert any(k.endswith("attn1.processor") for k in procs)


def test_the_loader_says_when_a_folder_is_not_a_multiview_model(tiny_pixel_dir, mv_dir, tmp_path):
    assert folder_views(tiny_pixel_dir) == 1 and DiffusersPrior.from_pretrained(tiny_pixel_dir).views_per_sample == 1
    with pytest.raises(PriorLoadError, match="is not a multi-view model"):
        MultiViewPrior.from_pretrained(tiny_pixel_dir)
    with pytest.raises(PriorLoadError, match="does not exist"):
        MultiViewPrior.from_pretrained(tmp_path / "nothing")
    # a multi-view family whose U-Net has no camera input
    no_cam = tmp_path / "no-cam"
    shutil.copytree(mv_dir, no_cam)
    cfg = json.loads((no_cam / "unet" / "config.json").read_text())
    (no_cam / "unet" / "config.json").write_text(json.dumps({**cfg, "class_embed_type": None}))
    with pytest.raises(PriorLoadError, match="no camera input"):
        MultiViewPrior.from_pretrained(no_cam)
    # MVDream's diffusers port: recognised and converted (tests/test_mvdream_port.py); without its LDM parameters
    # it says what is missing
    port = tmp_path / "mvdream"
    shutil.copytree(mv_dir, port)
    (port / "model_index.json").write_text(json.dumps({"_class_name": "MVDreamPipeline"}))
    (port / "unet" / "config.json").write_text(json.dumps({"_class_name": "MultiViewUNetModel", "camera_dim": 16}))
    with pytest.raises(PriorLoadError, match="lacks an LDM U-Net parameter"):
        MultiViewPrior.from_pretrained(port)
    # a U-Net class that is neither
    (port / "unet" / "config.json").write_text(json.dumps({"_class_name": "SomeOtherUNet"}))
    with pytest.raises(PriorLoadError, match="'SomeOtherUNet' U-Net"):
        MultiViewPrior.from_pretrained(port)
    assert set(CAMERA_UNET_KWARGS) <= set(cfg)


# --- candidates per set of views -----------------------------------------------------------------------------

def test_candidate_rows_put_one_candidate_in_v_consecutive_rows():
    assert candidate_rows(2, 3).tolist() == [0, 0, 0, 1, 1, 1]  # single view: b*N + i
    assert candidate_rows(4, 2, 4).tolist() == [0, 1, 2, 3, 0, 1, 2, 3]  # (g*N + i)*V + v
    assert candidate_rows(8, 2, 4).tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7]
    rows = torch.arange(16.0)
    for views in (1, 4):
        bn = by_image(rows, 8, 2, views)
        assert bn.shape == (8, 2) and torch.equal(to_rows(bn, views), rows)
        assert torch.equal(candidate_rows(8, 2, views)[bn.long()], torch.arange(8)[:, None].expand(8, 2))
    with pytest.raises(ValueError, match="sets of 4"):
        candidate_rows(6, 2, 4)


def test_noise_candidates_hand_the_prior_sets_of_views(mv):
    x0 = torch.rand(4, 3, 8, 8) * 2 - 1
    emb = mv.embed([PROMPT] * 4).with_cameras(_ring())
    seen = []
    inner = mv.predict_eps
    mv.predict_eps = lambda x_t, t, e: (seen.append(e.cameras), inner(x_t, t, e))[1]
    try:
        c = noise_candidates(mv, x0, emb, 400, 3, torch.Generator().manual_seed(0))
    finally:
        del mv.predict_eps
    assert c.views == 4 and c.x_t.shape == (12, 3, 8, 8)
    a = mv.alphas_cumprod[400]
    src = candidate_rows(4, 3, 4)
    torch.testing.assert_close(c.x_t, a.sqrt() * x0[src] + (1 - a).sqrt() * c.eps)
    torch.testing.assert_close(seen[0], emb.cameras[src])  # each row with its own view's camera
    assert len({tuple(r.flatten().tolist()) for r in c.eps}) == 12  # independent noise per view and candidate


def test_reward_sds_on_a_multiview_prior_scores_each_candidate_by_its_views_mean(mv):
    """RewardSDS as the official 3D code: candidate i is one set of per-view noises, its reward the mean over
    its views, its weight shared by the views; the rewards come back per (view, candidate)."""
    def by_row(images, prompts):
        return torch.arange(len(images), dtype=torch.float32)

    g = build_guidance(GuidanceConfig(method="reward-sds", n_noises=4, cfg=20.0), mv, CallableReward(by_row))
    x0 = (torch.rand(4, 3, 8, 8) * 2 - 1).requires_grad_(True)
    out = g(x0, [PROMPT] * 4, 500, True, torch.Generator().manual_seed(0), shared=True, cameras=_ring())
    assert out.rewards.shape == (4, 4) and out.previews.shape == (16, 3, 8, 8)
    # row (i*V + v) scored r: entry [v, i] = i*4 + v, so candidate i's mean is 4i + 1.5, ranking 3 > 2 > 1 > 0
    torch.testing.assert_close(out.rewards, (torch.arange(4)[None] * 4 + torch.arange(4)[:, None]).float())
    w = out.weights[0]  # top-bottom: the top-2 candidates (2, 3) up, the bottom-2 (0, 1) down
    assert (out.weights == w).all() and (w[2:] > 0).all() and (w[:2] < 0).all()
    assert out.finite and math.isfinite(float(out.loss.detach()))
    with pytest.raises(ValueError, match="needs the cameras"):
        g(x0, [PROMPT] * 4, 500, True, torch.Generator().manual_seed(0), shared=True)
    with pytest.raises(ValueError, match="single-view prior"):
        build_guidance(GuidanceConfig(method="vsd"), mv)
