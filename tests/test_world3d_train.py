"""The 3D world's training half: its data, tokenizer, hard negatives and the shared trainers run on it.

The trainers are the 2D world's (`rewardsds.world.train`), run with the 3D `WorldSpec`; these tests
run each for 2 steps at 16 px and load what they wrote, and pin the 2D defaults the refactor kept.
"""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardsds.world3d import paths as paths3d
from rewardsds.world3d.data import sample_batch
from rewardsds.world3d.negatives import all_hard_negatives, hard_negatives, holds
from rewardsds.world3d.scenes import HELD_OUT, VIEWS, parse_caption, sample_scene, view_suffix
from rewardsds.world3d.tokenizer import MAX_LENGTH, build_tokenizer

_SUFFIXES = tuple(f", {v} view" for v in VIEWS)


def test_batch_shapes_ranges_and_determinism():
    images, captions, scenes = sample_batch(3, 6, image_size=16)
    assert images.shape == (6, 3, 16, 16) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert len(captions) == len(scenes) == 6 and all(isinstance(c, str) for c in captions)
    again = sample_batch(3, 6, image_size=16)
    assert np.array_equal(images, again[0]) and captions == again[1] and scenes == again[2]
    assert not np.array_equal(images, sample_batch(4, 6, image_size=16)[0])
    # every view shows something besides the backdrop (the cameras look at the objects)
    assert all((img.std(axis=(1, 2)) > 0.01).any() for img in images)


def test_view_suffix_only_for_the_prior_and_same_scenes_otherwise():
    _, with_view, scenes = sample_batch(5, 16, image_size=8, view_prompts=True)
    images, plain, scenes2 = sample_batch(5, 16, image_size=8, view_prompts=False)
    assert scenes == scenes2
    assert all(c.endswith(_SUFFIXES) for c in with_view)
    assert not any(c.endswith(_SUFFIXES) or "view" in c for c in plain)
    assert [c.rsplit(",", 1)[0] for c in with_view] == plain
    assert {c.rsplit(", ", 1)[1] for c in sample_batch(0, 64, image_size=4)[1]} <= {"front view", "side view",
                                                                                      "back view"}
    for c, sc in zip(with_view, scenes):  # the caption still reads back as its scene
        assert [(o.colour, o.shape) for o in parse_caption(c).objects] == [(o.colour, o.shape) for o in sc.objects]


def test_heldout_split_and_suffix_matches_the_gen3d_labels():
    _, _, scenes = sample_batch(1, 12, image_size=4, split="heldout")
    assert all((sc.objects[0].colour, sc.objects[0].shape) in HELD_OUT for sc in scenes)
    _, _, train = sample_batch(1, 64, image_size=4)
    assert not any((o.colour, o.shape) in HELD_OUT for sc in train for o in sc.objects)
    assert view_suffix(10.0, 20.0) == ", front view" and view_suffix(180.0, 5.0) == ", back view"


def test_tokenizer_reads_every_caption_within_its_length():
    tok = build_tokenizer()
    rng = random.Random(0)
    for _ in range(500):
        sc = sample_scene(rng)
        for text in [sc.caption(rng) + view_suffix(rng.uniform(0, 360), rng.uniform(0, 90)),
                     *hard_negatives(sc, rng, 3, 1.0)]:
            ids = tok(text).input_ids
            assert tok.unk_token_id not in ids and len(ids) <= MAX_LENGTH, text


def test_hard_negatives_exclude_the_caption_and_include_the_relation_edit():
    rng = random.Random(1)
    for _ in range(200):
        sc = sample_scene(rng, 2)
        negs = all_hard_negatives(sc)
        assert negs and sc.caption() not in negs
        if sc.relation in ("left of", "in front of", "on top of"):
            flipped = {"left of": "right of", "in front of": "behind"}.get(sc.relation)
            bottom = (sc.objects[1].colour, sc.objects[1].shape)  # for "on top of": the stack upside down
            assert any(parse_caption(n).relation == flipped if flipped else
                       (parse_caption(n).objects[0].colour, parse_caption(n).objects[0].shape) == bottom
                       for n in negs), (sc, negs)
    sc = sample_scene(random.Random(2), 2)
    assert holds(sc, sc)


def test_the_judge_finds_every_hard_negative_false():
    """An independent reader (judge3d on the scene's exact field) agrees: the caption holds, no negative does."""
    from functools import partial

    from rewardsds.world3d.judge import judge_field
    from rewardsds.world3d.render import scene_density_colour

    rng = random.Random(7)
    for _ in range(3):
        sc = sample_scene(rng, 2)
        field = partial(scene_density_colour, sc)
        assert judge_field(field, sc.caption(), resolution=48).all_correct
        assert not any(judge_field(field, n, resolution=48).all_correct for n in all_hard_negatives(sc))


def test_missing_weights_say_how_to_train_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="rewardsds.world3d.train.clip"):
        paths3d.require(tmp_path / "clip", "config.json")
    from rewardsds.world3d.train.prior import Prior3DTrainConfig

    with pytest.raises(FileNotFoundError, match="not trained yet"):
        Prior3DTrainConfig(clip=tmp_path / "clip", out=tmp_path / "p", work=tmp_path / "w")
    assert paths3d.clip_dir().parent == paths3d.prior_dir().parent == paths3d.weights_dir()


def test_clip_trainer_writes_a_loadable_3d_clip(tiny3d):
    """The session's 2-step 3D CLIP at 16 px (`tiny3d`, its final accuracy check included)."""
    from transformers import AutoTokenizer, CLIPModel

    clip3d = tiny3d[0]
    model, tok = CLIPModel.from_pretrained(clip3d), AutoTokenizer.from_pretrained(clip3d)
    assert model.config.vision_config.image_size == 16
    assert model.config.text_config.max_position_embeddings == MAX_LENGTH == tok.model_max_length
    assert len(tok) == len(build_tokenizer())
    record = json.loads((clip3d / "training_record.json").read_text())
    assert record["command"] == "python -m rewardsds.world3d.train.clip" and record["steps_done"] == 2
    assert set(record["hard_negative_accuracy"]) == {"train", "heldout"}


def test_clip3d_trains_with_swap_pairs(tmp_path):
    from rewardsds.world3d.train.clip import Clip3DTrainConfig, main

    main(Clip3DTrainConfig(out=tmp_path / "o", work=tmp_path / "w", swap_pairs=0.5, steps=1, batch=8, image_size=16))
    assert (tmp_path / "o" / "model.safetensors").exists()


def test_prior_trainer_writes_a_view_aware_3d_prior(tiny3d):
    """The session's 2-step 3D prior at 16 px (`tiny3d`), trained on its CLIP."""
    from rewardsds.priors.diffusers_prior import DiffusersPrior

    out = tiny3d[1]
    prior = DiffusersPrior.from_pretrained(out)
    assert prior.family == paths3d.WORLD3D_FAMILY == "RewardSDSWorld3DPrior"
    assert prior.tokenizer.model_max_length == MAX_LENGTH
    record = json.loads((out / "training_record.json").read_text())
    assert record["command"].startswith("python -m rewardsds.world3d.train.prior") and record["steps_done"] == 2
    # the view words reach the U-Net: two views of one prompt condition it differently
    enc = prior.tokenizer(["a red cube, front view", "a red cube, back view"], padding="max_length",
                          max_length=MAX_LENGTH, return_tensors="pt")
    with torch.no_grad():
        states = prior.text_encoder(input_ids=enc.input_ids).last_hidden_state
    assert not torch.allclose(states[0], states[1])
    # heads of HEAD_DIM channels, also after the folder round trip (diffusers' attention_head_dim counts heads)
    from rewardsds.world.train.prior import HEAD_DIM

    attn = [m for n, m in prior.unet.named_modules() if n.endswith("attn1")]
    assert attn and all(m.inner_dim // m.heads == HEAD_DIM for m in attn)


def test_2d_trainers_keep_their_world_and_defaults():
    """The refactor made the trainers world-agnostic without moving a 2D default."""
    from rewardsds.world import paths
    from rewardsds.world.tokenizer import MAX_LENGTH as MAX_2D
    from rewardsds.world.train.clip import ClipTrainConfig
    from rewardsds.world.train.common import WORLD
    from rewardsds.world.train.prior import PriorTrainConfig, _command

    c = ClipTrainConfig()
    assert (c.out, c.work, c.steps, c.batch, c.lr, c.seed, c.image_size, c.checkpoint_every) == \
        (paths.clip_dir(), Path("runs/world/clip"), 3000, 128, 1e-3, 0, 32, 250)
    assert (c.negatives, c.relation_focus, c.swap_pairs, c.init, c.max_minutes, c.threads) == \
        (3, 1.0, 0.0, None, 0.0, 0)
    p = PriorTrainConfig()
    assert (p.clip, p.out, p.work, p.steps, p.batch, p.lr, p.checkpoint_every) == \
        (paths.clip_dir(), paths.prior_dir(), Path("runs/world/prior"), 3000, 64, 5e-4, 100)
    assert (p.ema, p.uncond_prob, p.warmup, p.stop_at, p.export_only, p.init) == (0.999, 0.1, 200, 0, False, None)
    assert ClipTrainConfig.world is PriorTrainConfig.world is WORLD
    assert (WORLD.family, WORLD.max_length, WORLD.module) == ("RewardSDSWorldPrior", MAX_2D, "rewardsds.world.train")
    assert "world" not in vars(c) and _command().startswith("python -m rewardsds.world.train.prior")
    from rewardsds.world.scenes import sample_batch as sample_2d

    assert WORLD.clip_data is WORLD.prior_data is sample_2d


def test_2d_trainers_still_train_the_2d_world(tmp_path):
    """Two steps of each 2D trainer: same family, commands and text length as before the refactor."""
    from rewardsds.priors.diffusers_prior import DiffusersPrior
    from rewardsds.world.paths import WORLD_FAMILY
    from rewardsds.world.train import clip, prior

    clip.main(clip.ClipTrainConfig(out=tmp_path / "clip", work=tmp_path / "cw", steps=2, batch=4, image_size=16,
                                   swap_pairs=0.5, threads=1))
    record = json.loads((tmp_path / "clip" / "training_record.json").read_text())
    assert record["command"] == "python -m rewardsds.world.train.clip"
    prior.main(prior.PriorTrainConfig(clip=tmp_path / "clip", out=tmp_path / "prior", work=tmp_path / "pw",
                                      steps=2, batch=4, image_size=16, warmup=1, threads=1))
    loaded = DiffusersPrior.from_pretrained(tmp_path / "prior")
    assert loaded.family == WORLD_FAMILY == "RewardSDSWorldPrior" and loaded.tokenizer.model_max_length == 16


def test_worker_processes_make_the_same_batches_in_step_order():
    """--workers only moves where batches are made: each step's batch is still that of (seed, step)."""
    from functools import partial

    from rewardsds.world.train import common
    from rewardsds.world.train.clip import _batch as clip_batch
    from rewardsds.world.train.prior import PriorTrainConfig
    from rewardsds.world.train.prior import _batch as prior_batch
    from rewardsds.world3d.train.clip import Clip3DTrainConfig

    cfg = Clip3DTrainConfig(batch=4, image_size=8, out=Path("unused"), work=Path("unused"))
    fn = partial(clip_batch, cfg, build_tokenizer())
    inline = list(common.batches(fn, 3, 6))
    ahead = list(common.batches(fn, 3, 6, workers=2))
    assert len(inline) == len(ahead) == 3
    for (p0, e0), (p1, e1) in zip(inline, ahead):
        assert torch.equal(p0, p1) and torch.equal(e0.input_ids, e1.input_ids)
    assert not torch.equal(inline[0][0], inline[1][0])
    pcfg = PriorTrainConfig(batch=3, image_size=8, out=Path("unused"), work=Path("unused"), device="cpu")
    for a, b in zip(common.batches(partial(prior_batch, pcfg), 0, 2),
                    common.batches(partial(prior_batch, pcfg), 0, 2, workers=1)):
        assert all(torch.equal(x, y) for x, y in zip(a[:3], b[:3])) and a[3] == b[3]


def test_bad_device_and_workers_are_refused_by_the_config():
    from rewardsds.world3d.train.clip import Clip3DTrainConfig

    with pytest.raises(ValueError, match="device must be"):
        Clip3DTrainConfig(device="gpu0", out=Path("u"), work=Path("u"))
    with pytest.raises(ValueError, match="workers"):
        Clip3DTrainConfig(workers=-1, out=Path("u"), work=Path("u"))


def test_clip_batches_are_view_suffixed_and_negatives_keep_the_view():
    """The 3D CLIP reads captions as gen3d passes them (view-suffixed); a negative differs in a fact only."""
    from rewardsds.world.train.clip import _batch as clip_batch
    from rewardsds.world3d.scenes import suffix_of
    from rewardsds.world3d.train.clip import Clip3DTrainConfig

    cfg = Clip3DTrainConfig(batch=6, image_size=8, negatives=3, out=Path("u"), work=Path("u"))
    tok = build_tokenizer()
    _, enc = clip_batch(cfg, tok, 4)
    texts = [t.replace(" , ", ", ") for t in tok.batch_decode(enc.input_ids, skip_special_tokens=True)]
    captions, negs = texts[:6], texts[6:]
    assert all(suffix_of(c) for c in captions)
    for i, c in enumerate(captions):
        for n in negs[3 * i:3 * i + 3]:
            assert suffix_of(n) == suffix_of(c) and n != c
    assert suffix_of("a red cube") == "" and suffix_of("a red cube, back view") == ", back view"


def test_swap_pairs_add_relation_twins_seen_from_the_same_view_class():
    from rewardsds.world3d.data import swap_pairs
    from rewardsds.world3d.negatives import INVERSE_RELATION
    from rewardsds.world3d.scenes import suffix_of

    images, captions, scenes = sample_batch(11, 16, image_size=8)
    before = list(scenes)
    rel = [i for i, sc in enumerate(scenes) if sc.relation in INVERSE_RELATION]
    assert len(rel) >= 2
    swap_pairs(images, captions, scenes, 0.25, random.Random(0), 8)
    for j, i in enumerate(rel[:4]):
        dst = 15 - j
        if dst <= i:
            break
        twin, src = scenes[dst], before[i]
        assert twin.relation == INVERSE_RELATION[src.relation]
        assert parse_caption(captions[dst]).relation == twin.relation
        assert suffix_of(captions[dst]) == suffix_of(captions[i])
        assert holds(twin, twin) and not holds(src, twin)  # the source's caption is false of its twin
        assert images[dst].std() > 0.01


def test_two_object_share_of_the_3d_batches_and_the_clip_option():
    """--two-objects reaches the 3D data through the CLIP trainer's batches; the default mix draws as before."""
    from rewardsds.world.train.clip import _batch as clip_batch
    from rewardsds.world3d.train.clip import Clip3DTrainConfig

    scenes = sample_batch(5, 300, image_size=4, supersample=1, two_objects=0.8)[2]
    assert 0.72 < np.mean([len(s.objects) == 2 for s in scenes]) < 0.88
    assert all(len(s.objects) == 1 for s in sample_batch(5, 40, image_size=4, supersample=1, two_objects=0.0)[2])
    assert sample_batch(9, 6, image_size=4)[1] == sample_batch(9, 6, image_size=4, two_objects=None)[1]
    tok = build_tokenizer()
    cfg = Clip3DTrainConfig(batch=8, image_size=8, negatives=1, two_objects=1.0, out=Path("u"), work=Path("u"))
    _, enc = clip_batch(cfg, tok, 0)
    captions = tok.batch_decode(enc.input_ids[:8], skip_special_tokens=True)
    assert all(len(parse_caption(c.replace(" , ", ", ")).objects) == 2 for c in captions)
    with pytest.raises(ValueError, match="two_objects"):
        Clip3DTrainConfig(two_objects=-0.1, out=Path("u"), work=Path("u"))


def test_camera_frame_names_relations_as_the_render_shows_them():
    """Seen from azimuth 90 the object in front stands on the image's left (rendered, not assumed)."""
    from dataclasses import replace

    from rewardsds.world3d.negatives import INVERSE_RELATION
    from rewardsds.world3d.render import render
    from rewardsds.world3d.scenes import Obj, Scene, camera_frame

    sc = Scene((Obj("red", "sphere", "big", 0.0, 0.45), Obj("blue", "sphere", "big", 0.0, -0.45)), "in front of",
               (False, False))
    cols = np.arange(32)
    for az, rel in {0: "in front of", 90: "left of", 180: "behind", 270: "right of"}.items():
        img = render(sc, az, 20.0, 32).numpy()
        red, blue = (img[0] > 0.5) & (img[2] < 0.3), (img[2] > 0.5) & (img[0] < 0.3)
        red_x, blue_x = (red.sum(0) * cols).sum() / red.sum(), (blue.sum(0) * cols).sum() / blue.sum()
        turned = camera_frame(sc, az)
        assert turned.relation == rel
        if rel in ("left of", "right of"):
            assert (red_x < blue_x) == (rel == "left of")
        else:  # the nearer sphere covers more pixels
            assert (red.sum() > blue.sum()) == (rel == "in front of")
        assert holds(turned, turned) and not holds(replace(turned, relation=INVERSE_RELATION[rel]), turned)
    top, bottom = Obj("red", "cube", "small", 0.0, 0.0, 0.7), Obj("blue", "cube", "big")
    for rel in ("on top of", "and"):
        assert camera_frame(Scene((top, bottom), rel, (False, False)), 123.0).relation == rel


def test_camera_frame_batches_follow_the_drawn_cameras():
    """Camera-frame captions carry no suffix and render the scenes as drawn; from the front a floor-plan
    relation keeps its word, from the back it is inverted."""
    from rewardsds.world3d.data import sample_views
    from rewardsds.world3d.negatives import INVERSE_RELATION

    images, captions, scenes = sample_batch(11, 60, image_size=8, supersample=1, camera_frame=True)
    plain_images, _, drawn = sample_batch(11, 60, image_size=8, supersample=1, view_prompts=False)
    assert np.array_equal(images, plain_images)
    assert not any(c.endswith(" view") for c in captions)
    assert all(parse_caption(c).relation == sc.relation for c, sc in zip(captions, scenes) if len(sc.objects) == 2)
    az, _ = sample_views(60, 11)
    checked = 0
    for a, sc, d in zip(az, scenes, drawn):
        a = (float(a) + 180.0) % 360.0 - 180.0
        if d.relation in INVERSE_RELATION and (abs(a) < 40 or abs(a) > 140):
            assert sc.relation == (d.relation if abs(a) < 40 else INVERSE_RELATION[d.relation])
            checked += 1
    assert checked >= 3
