"""The multi-view prior's trainer (`rewardsds.world3d.train.mvprior`), 2 steps at 16 px: its batches (sets of
views with their cameras), its folder (loadable as a multi-view prior, with a record), resume, and --init from
the single-view 3D prior."""

from __future__ import annotations

import json

import pytest
import torch

from rewardsds.priors.multiview import MultiViewPrior, camera_input
from rewardsds.world3d import paths as paths3d
from rewardsds.world3d.train.mvprior import MVPriorTrainConfig, _batch, init_unet, main


def _cfg(tmp_path, clip, **kw) -> MVPriorTrainConfig:
    base = dict(clip=clip, out=tmp_path / "mv", work=tmp_path / "work", steps=2, batch=2, image_size=16, warmup=1,
                checkpoint_every=1, threads=1)
    return MVPriorTrainConfig(**{**base, **kw})


def test_batches_are_scenes_seen_from_camera_sets(tmp_path):
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "config.json").write_text("{}")  # the batches need the options only, not a CLIP
    cfg = MVPriorTrainConfig(clip=tmp_path / "clip", out=tmp_path / "o", work=tmp_path / "w", batch=3, image_size=16,
                             uncond_prob=0.5)
    x0, noise, t, captions, c2w = _batch(cfg, 5)
    assert x0.shape == noise.shape == (12, 3, 16, 16) and c2w.shape == (12, 4, 4) and len(captions) == 12
    assert x0.min() >= -1 and x0.max() <= 1
    for s in range(3):
        rows = slice(4 * s, 4 * s + 4)
        assert len(set(captions[rows])) == 1 and len(t[rows].unique()) == 1  # one caption, one t per scene
        assert not any(w in captions[4 * s] for w in ("front", "side", "back", "overhead"))  # view-free
        eye = c2w[rows, :3, 3]
        assert torch.allclose(eye[:, 1], eye[:1, 1].expand(4))  # one elevation
    again = _batch(cfg, 5)
    assert torch.equal(again[0], x0) and again[3] == captions  # a function of (seed, step) alone


def test_two_steps_train_a_loadable_multiview_prior_and_resume(tiny3d, tmp_path):
    clip, _ = tiny3d
    main(_cfg(tmp_path, clip))
    out = tmp_path / "mv"
    assert json.loads((out / "model_index.json").read_text())["_class_name"] == paths3d.WORLD3D_MV_FAMILY
    record = json.loads((out / "training_record.json").read_text())
    assert record["steps_done"] == 2 and record["views"] == 4 and "mvprior" in record["command"]
    assert (tmp_path / "work" / "checkpoint.safetensors").exists()
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt"))  # safetensors only, no pickle
    prior = MultiViewPrior.from_pretrained(out)
    assert prior.views_per_sample == 4 and prior.sample_shape == (3, 16, 16)
    emb = prior.embed(["a red cube"] * 4).with_cameras(_batch_c2w())
    with torch.no_grad():
        assert torch.isfinite(prior.predict_eps(torch.randn(4, 3, 16, 16), torch.full((4,), 500), emb).cond).all()
    # resume: a longer run continues from the checkpoint in --work
    main(_cfg(tmp_path, clip, steps=3))
    record = json.loads((out / "training_record.json").read_text())
    assert record["steps_done"] == 3 and len(record["history"]) == 2 and "resumed at step 2" in record["history"][-1]


def _batch_c2w() -> torch.Tensor:
    from rewardsds.render import sample_camera_sets

    return sample_camera_sets(1, 4, generator=torch.Generator().manual_seed(0)).c2w


def test_init_from_the_single_view_prior_starts_blind_to_the_camera(tiny3d, tmp_path):
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor2_0

    _, prior = tiny3d
    unet, multiview = init_unet(prior, 16)
    assert not multiview
    src = UNet2DConditionModel.from_pretrained(prior / "unet").eval()
    unet.eval().set_attn_processor(AttnProcessor2_0())
    x, t = torch.randn(4, 3, 16, 16), torch.tensor([100, 300, 600, 900])
    ctx = torch.randn(4, 24, src.config.cross_attention_dim)
    with torch.no_grad():
        ref = src(x, t, encoder_hidden_states=ctx).sample
        got = unet(x, t, encoder_hidden_states=ctx, class_labels=camera_input(_batch_c2w())).sample
    torch.testing.assert_close(got, ref)
    with pytest.raises(ValueError, match="px"):
        init_unet(prior, 32)
    # and the trainer runs from it
    main(_cfg(tmp_path, None, init=prior, steps=1))
    assert MultiViewPrior.from_pretrained(tmp_path / "mv").views_per_sample == 4


def test_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="views"):
        MVPriorTrainConfig(clip=tmp_path, out=tmp_path / "o", work=tmp_path / "w", views=0, init=None)
    with pytest.raises(FileNotFoundError, match="rewardsds.world3d.train.clip"):
        MVPriorTrainConfig(clip=tmp_path / "clip", out=tmp_path / "o", work=tmp_path / "w")
