"""Reward adapters on tiny random models saved to disk and loaded back as users load them."""

from __future__ import annotations

import os
import sys
import types

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # conftest sets it too; never reach a model hub

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from rewardsds.rewards import CallableReward, MixReward
from rewardsds.rewards.aesthetic import AestheticReward, MLPHead, head_from_state_dict, load_head
from rewardsds.rewards.clip_score import OPENAI_CLIP_MEAN as CMEAN
from rewardsds.rewards.clip_score import OPENAI_CLIP_STD as CSTD
from rewardsds.rewards.clip_score import CLIPScoreReward, PickScoreReward, preprocess
from rewardsds.rewards.factory import _split_terms, load_reward
from rewardsds.world.tokenizer import MAX_LENGTH, build_tokenizer

torch.set_num_threads(1)

MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
PROMPTS = ["a red circle", "a blue square left of a green diamond", "a photo of a yellow triangle",
           "there is a big purple square", "a small orange diamond above a red circle"]


def _save_processor(path, size):
    from transformers import CLIPImageProcessorPil

    CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                          image_mean=MEAN, image_std=STD).save_pretrained(path)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    tok = build_tokenizer()
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=MAX_LENGTH, bos_token_id=2,
                eos_token_id=tok.eos_token_id, pad_token_id=0)
    vision = dict(image_size=16, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2)
    path = tmp_path_factory.mktemp("clip")
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(path)
    tok.save_pretrained(path)
    _save_processor(path, 16)
    return path


@pytest.fixture(scope="module")
def vision_dir(tmp_path_factory):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(1)
    cfg = CLIPVisionConfig(image_size=16, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2, projection_dim=12)
    path = tmp_path_factory.mktemp("vision")
    CLIPVisionModelWithProjection(cfg).save_pretrained(path)
    _save_processor(path, 16)
    return path


def _images(n=5, h=16, w=16, seed=0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


# --- CLIPScore / PickScore -------------------------------------------------------------------------

def test_preprocess_matches_the_saved_image_processor_and_crops(clip_dir):
    from PIL import Image
    from transformers import CLIPImageProcessorPil

    x = torch.randint(0, 256, (2, 3, 16, 16), generator=torch.Generator().manual_seed(0)).float() / 255
    pil = [Image.fromarray((im.permute(1, 2, 0) * 255).round().byte().numpy()) for im in x]
    ref = CLIPImageProcessorPil.from_pretrained(clip_dir)(images=pil, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(preprocess(x, 16, MEAN, STD), ref, atol=1e-5, rtol=0)
    x = torch.zeros(1, 3, 40, 20)
    x[..., 10:30, :] = 1.0  # the centre 20x20 square is white; the crop keeps it (and a filter rim)
    out = preprocess(x, 10, [0, 0, 0], [1, 1, 1])
    assert out.shape == (1, 3, 10, 10)
    assert float(out[..., 1:-1, :].min()) > 0.99 and float(out.min()) > 0.9


def test_clip_score_matches_hand_computation(clip_dir):
    from transformers import AutoTokenizer, CLIPModel

    r = CLIPScoreReward.from_pretrained(clip_dir, clamp=False)
    x = _images()
    model, tok = CLIPModel.from_pretrained(clip_dir).eval(), AutoTokenizer.from_pretrained(clip_dir)
    with torch.no_grad():
        img = model.get_image_features(pixel_values=(x - torch.tensor(MEAN).view(1, 3, 1, 1))
                                       / torch.tensor(STD).view(1, 3, 1, 1))
        enc = tok(PROMPTS, padding=True, return_tensors="pt")
        txt = model.get_text_features(input_ids=enc.input_ids, attention_mask=enc.attention_mask)
    img, txt = (o if isinstance(o, torch.Tensor) else o.pooler_output for o in (img, txt))
    cos = F.cosine_similarity(img, txt, dim=-1)
    s = r(x, PROMPTS)
    assert s.shape == (5,)
    torch.testing.assert_close(s, 100 * cos, atol=1e-4, rtol=1e-4)
    clamped = CLIPScoreReward.from_pretrained(clip_dir)(x, PROMPTS)
    torch.testing.assert_close(clamped, 100 * cos.clamp_min(0), atol=1e-4, rtol=1e-4)
    assert r.max_length == MAX_LENGTH


def test_clip_score_batching_is_consistent(clip_dir):
    r = CLIPScoreReward.from_pretrained(clip_dir, clamp=False, batch_size=2)
    x = _images(h=24, w=20)  # resized + cropped on the way
    batched = r(x, PROMPTS)
    single = torch.cat([r(x[i:i + 1], PROMPTS[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-5)


def test_clip_score_logit_scale_option_and_pickscore(clip_dir):
    x = _images()
    cos = CLIPScoreReward.from_pretrained(clip_dir, scale=1.0, clamp=False)(x, PROMPTS)
    pick = PickScoreReward.from_pretrained(clip_dir, processor_path=clip_dir)
    assert isinstance(pick, PickScoreReward) and pick.name == "pickscore" and not pick.clamp
    t = float(pick.model.logit_scale.exp())
    torch.testing.assert_close(pick(x, PROMPTS), t * cos, atol=1e-4, rtol=1e-4)
    own = CLIPScoreReward.from_pretrained(clip_dir, scale=None, clamp=False)(x, PROMPTS)
    torch.testing.assert_close(own, t * cos, atol=1e-4, rtol=1e-4)


# --- aesthetic heads -------------------------------------------------------------------------------

def _embed(vision_dir, x):
    from transformers import CLIPVisionModelWithProjection

    m = CLIPVisionModelWithProjection.from_pretrained(vision_dir).eval()
    with torch.no_grad():
        e = m(pixel_values=preprocess(x, 16, MEAN, STD)).image_embeds
    return e / e.norm(dim=-1, keepdim=True)


def test_aesthetic_linear_head_from_pth(vision_dir, tmp_path):
    g = torch.Generator().manual_seed(2)
    w, b = torch.randn(1, 12, generator=g), torch.randn(1, generator=g)
    torch.save({"weight": w, "bias": b}, tmp_path / "sa_0_4_linear.pth")
    assert type(load_head(tmp_path / "sa_0_4_linear.pth")) is nn.Linear
    r = AestheticReward.from_pretrained(vision_dir, tmp_path / "sa_0_4_linear.pth")
    x = _images()
    expect = _embed(vision_dir, x) @ w.T + b
    torch.testing.assert_close(r(x, [""] * 5), expect.squeeze(-1), atol=1e-5, rtol=1e-5)


def test_aesthetic_mlp_head_from_safetensors(vision_dir, tmp_path):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(3)
    dims = [(12, 1024), (1024, 128), (128, 64), (64, 16), (16, 1)]
    state = {}
    for i, (din, dout) in zip((0, 2, 4, 6, 7), dims, strict=True):
        state[f"layers.{i}.weight"] = torch.randn(dout, din, generator=g) / din ** 0.5
        state[f"layers.{i}.bias"] = torch.randn(dout, generator=g)
    save_file(state, str(tmp_path / "mlp.safetensors"))
    assert isinstance(load_head(tmp_path / "mlp.safetensors"), MLPHead)
    r = AestheticReward.from_pretrained(vision_dir, tmp_path / "mlp.safetensors", batch_size=2)
    x = _images()
    h = _embed(vision_dir, x)
    for i in (0, 2, 4, 6, 7):  # no activations in this MLP; Dropout is identity at eval
        h = h @ state[f"layers.{i}.weight"].T + state[f"layers.{i}.bias"]
    torch.testing.assert_close(r(x, [""] * 5), h.squeeze(-1), atol=1e-4, rtol=1e-4)
    single = torch.cat([r(x[i:i + 1], [""]) for i in range(5)])
    torch.testing.assert_close(single, r(x, [""] * 5), atol=1e-4, rtol=1e-5)


def test_aesthetic_reads_the_vision_tower_of_a_full_clip_folder(clip_dir, tmp_path):
    from transformers import CLIPModel

    torch.save({"weight": torch.ones(1, 16), "bias": torch.zeros(1)}, tmp_path / "h.pth")
    r = AestheticReward.from_pretrained(clip_dir, tmp_path / "h.pth")  # as with openai/clip-vit-large-patch14
    x = _images()
    with torch.no_grad():
        e = CLIPModel.from_pretrained(clip_dir).get_image_features(pixel_values=preprocess(x, 16, MEAN, STD))
    e = e if isinstance(e, torch.Tensor) else e.pooler_output
    torch.testing.assert_close(r.image_embeds(x), F.normalize(e, dim=-1), atol=1e-5, rtol=1e-5)


def test_aesthetic_head_errors(vision_dir, tmp_path):
    with pytest.raises(ValueError, match="unrecognised aesthetic head"):
        head_from_state_dict({"fc.weight": torch.zeros(1, 4)})
    torch.save({"state_dict": {"weight": torch.ones(1, 12), "bias": torch.zeros(1)}}, tmp_path / "h.pt")
    assert type(load_head(tmp_path / "h.pt")) is nn.Linear  # a wrapped {"state_dict": ...} also loads
    with pytest.raises(ValueError, match="head_path"):
        AestheticReward.from_pretrained(vision_dir)


# --- mixing, callables, factory ----------------------------------------------------------------------

def mean_brightness(images, prompts):
    return images.mean(dim=(1, 2, 3))


def prompt_length(images, prompts):
    return torch.tensor([float(len(p.split())) for p in prompts])


CONSTANT = CallableReward(lambda images, prompts: torch.full((images.shape[0],), 3.0), name="three")


def test_mix_reward_arithmetic():
    x, p = _images(), PROMPTS
    mix = MixReward([CallableReward(mean_brightness), CallableReward(prompt_length)], [0.5, -2.0])
    torch.testing.assert_close(mix(x, p), 0.5 * mean_brightness(x, p) - 2.0 * prompt_length(x, p))
    assert mix.name == "0.5*mean_brightness+-2*prompt_length"
    with pytest.raises(ValueError):
        MixReward([CallableReward(mean_brightness)], [1.0, 2.0])


def test_factory_loads_callables_and_mixes():
    x, p = _images(), PROMPTS
    r = load_reward("test_rewards:mean_brightness")
    assert isinstance(r, CallableReward)
    torch.testing.assert_close(r(x, p), mean_brightness(x, p))
    assert load_reward("test_rewards:CONSTANT") is CONSTANT
    spec = "0.25*test_rewards:mean_brightness + 2 * test_rewards:prompt_length+test_rewards:CONSTANT"
    mix = load_reward(spec)
    assert isinstance(mix, MixReward) and mix.weights == [0.25, 2.0, 1.0]
    torch.testing.assert_close(mix(x, p), 0.25 * mean_brightness(x, p) + 2 * prompt_length(x, p) + 3.0)
    # "+" inside an @path is part of the path: LAION's head file is sac+logos+ava1-l14-linearMSE.pth
    spec = "0.5*aesthetic@/h/sac+logos+ava1.pth+0.5*world-clip+pkg.mod:fn"
    assert _split_terms(spec) == ["0.5*aesthetic@/h/sac+logos+ava1.pth", "0.5*world-clip", "pkg.mod:fn"]


def test_factory_world_rewards(clip_dir, vision_dir, tmp_path):
    import shutil

    from safetensors.torch import save_file

    shutil.copytree(clip_dir, tmp_path / "clip")
    shutil.copytree(vision_dir, tmp_path / "aesthetic" / "vision")
    head = {"weight": torch.ones(1, 12), "bias": torch.zeros(1)}
    save_file(head, str(tmp_path / "aesthetic" / "head.safetensors"))
    clip = load_reward("world-clip", world_dir=tmp_path)
    assert isinstance(clip, CLIPScoreReward) and clip.scale == 100.0 and clip.name == "world-clip"
    aes = load_reward("world-aesthetic", world_dir=tmp_path)
    assert isinstance(aes, AestheticReward) and aes.name == "world-aesthetic"
    mix = load_reward("0.5*world-clip+0.5*world-aesthetic", world_dir=tmp_path)
    x = _images()
    torch.testing.assert_close(mix(x, PROMPTS), 0.5 * clip(x, PROMPTS) + 0.5 * aes(x, PROMPTS))
    assert isinstance(load_reward(f"clip@{clip_dir}"), CLIPScoreReward)


def test_factory_errors():
    with pytest.raises(ValueError, match="world-clip.*hpsv2"):
        load_reward("no-such-reward")
    with pytest.raises(ValueError, match="empty"):
        load_reward("world-clip+")
    with pytest.raises(ValueError, match="cannot load"):
        load_reward("rewardsds.no_such_module:fn")
    with pytest.raises(ValueError, match="head file"):
        load_reward("aesthetic")
    with pytest.raises(ValueError, match="not callable"):
        load_reward("test_rewards:MEAN")


# --- ImageReward (optional package; its plumbing is tested on a stand-in) ------------------------------

class _Patches(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3 * 32 * 32, 24)

    def forward(self, x):
        return self.proj(F.unfold(x, 32, stride=32).transpose(1, 2))  # [B, 49 tokens, 24]


class _FakeBlip(nn.Module):
    """Stand-in with ImageReward's BLIP interface: visual_encoder, text_encoder(cross-attn), tokenizer."""

    def __init__(self, tok):
        super().__init__()
        self.tokenizer, self.visual_encoder, self.emb = tok, _Patches(), nn.Embedding(len(tok), 24)

    def text_encoder(self, ids, attention_mask, encoder_hidden_states, encoder_attention_mask, return_dict):
        q = self.emb(ids) * attention_mask[..., None]
        att = torch.softmax(q @ encoder_hidden_states.transpose(1, 2), -1) @ encoder_hidden_states
        return types.SimpleNamespace(last_hidden_state=torch.cat([q + att] * 32, -1))  # 768 features


class _FakeImageReward(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.blip, self.mlp, self.mean, self.std = _FakeBlip(build_tokenizer(35)), nn.Linear(768, 1), 0.25, 2.0


@pytest.mark.parametrize("module, extra", [("ImageReward", "imagereward"), ("open_clip", "openclip")])
def test_missing_optional_package_names_the_extra(monkeypatch, module, extra):
    from rewardsds.rewards.hps import HPSv2Reward
    from rewardsds.rewards.imagereward import ImageRewardReward

    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    load = ImageRewardReward.from_pretrained if module == "ImageReward" else HPSv2Reward.from_pretrained
    with pytest.raises(ImportError, match=rf"pip install 'rewardsds\[{extra}\]'"):
        load("checkpoint.pt")


def test_imagereward_batched_path_on_a_stand_in(monkeypatch):
    from rewardsds.rewards.imagereward import ImageRewardReward

    fake = _FakeImageReward()
    monkeypatch.setitem(sys.modules, "ImageReward", types.SimpleNamespace(load=lambda name, device: fake))
    r = ImageRewardReward.from_pretrained("ImageReward-v1.0", batch_size=2)
    assert r.batched
    x = _images(h=40, w=32)
    s = r(x, PROMPTS)
    single = torch.cat([r(x[i:i + 1], PROMPTS[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(s, single, atol=1e-4, rtol=1e-5)
    with torch.no_grad():  # by hand: 224 px CLIP pre-processing, [CLS] feature, MLP, standardise
        emb = fake.blip.visual_encoder(preprocess(x, 224, CMEAN, CSTD))
        enc = fake.blip.tokenizer(PROMPTS, padding="max_length", max_length=35, return_tensors="pt")
        f = fake.blip.text_encoder(enc.input_ids, enc.attention_mask, emb, None, True).last_hidden_state[:, 0]
        expect = (fake.mlp(f).squeeze(-1) - 0.25) / 2.0
    torch.testing.assert_close(s, expect, atol=1e-4, rtol=1e-4)


def test_imagereward_pil_fallback():
    from rewardsds.rewards.imagereward import ImageRewardReward

    scorer = nn.Linear(1, 1)  # a model exposing only the package's public `score(prompt, image)`
    scorer.score = lambda prompt, image: len(prompt) + image.getpixel((0, 0))[0] / 255
    r = ImageRewardReward(scorer)
    assert not r.batched
    x = _images(2)
    expect = torch.tensor([len(p) for p in PROMPTS[:2]]) + (x[:, 0, 0, 0] * 255).round() / 255
    torch.testing.assert_close(r(x, PROMPTS[:2]), expect.float(), atol=1e-6, rtol=0)


def test_imagereward_real_package_is_importable():
    rm = pytest.importorskip("ImageReward")
    assert callable(rm.load)


# --- HPSv2 (open_clip optional) -------------------------------------------------------------------------

class _FakeOpenCLIP(nn.Module):  # open_clip's interface: .visual.image_size, encode_image, encode_text
    def __init__(self):
        super().__init__()
        self.visual = nn.Linear(3 * 8 * 8, 10)
        self.visual.image_size = (8, 8)
        self.text = nn.EmbeddingBag(100, 10)

    def encode_image(self, x):
        return self.visual(x.flatten(1))

    def encode_text(self, ids):
        return self.text(ids)


def test_hps_on_a_stand_in(monkeypatch, tmp_path):
    from rewardsds.rewards.hps import HPSv2Reward

    torch.manual_seed(5)
    trained = _FakeOpenCLIP()
    torch.save({"state_dict": trained.state_dict()}, tmp_path / "HPS_v2.1_compressed.pt")

    def tokenize(texts):
        return torch.tensor([[sum(map(ord, w)) % 100 for w in (t.split() + ["x"] * 6)[:6]] for t in texts])

    stub = types.SimpleNamespace(create_model=lambda arch, pretrained=None: _FakeOpenCLIP(),
                                 get_tokenizer=lambda arch: tokenize)
    monkeypatch.setitem(sys.modules, "open_clip", stub)
    r = HPSv2Reward.from_pretrained(tmp_path / "HPS_v2.1_compressed.pt", batch_size=2)
    x = _images(h=12, w=12)
    with torch.no_grad():
        img = trained.encode_image(preprocess(x, 8, CMEAN, CSTD))
        expect = F.cosine_similarity(img, trained.encode_text(tokenize(PROMPTS)), dim=-1)
    torch.testing.assert_close(r(x, PROMPTS), expect, atol=1e-5, rtol=1e-5)
    assert r.image_size == 8


def test_hps_real_open_clip_tiny_architecture(tmp_path):
    open_clip = pytest.importorskip("open_clip")
    import json

    from rewardsds.rewards.hps import HPSv2Reward

    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16,
                                           "patch_size": 16},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "rewardsds-tiny.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "cfg")
    model = open_clip.create_model("rewardsds-tiny", pretrained=None)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "hps.pt")
    r = HPSv2Reward.from_pretrained(tmp_path / "hps.pt", arch="rewardsds-tiny", batch_size=2)
    x = _images(h=32, w=32)
    s = r(x, PROMPTS)
    assert s.shape == (5,) and bool(((s >= -1) & (s <= 1)).all())
    torch.testing.assert_close(torch.cat([r(x[i:i + 1], PROMPTS[i:i + 1]) for i in range(5)]), s,
                               atol=1e-4, rtol=1e-5)



def test_spec_problem_reads_a_spec_without_loading_it(tmp_path):
    from rewardsds.rewards.factory import spec_problem

    head = tmp_path / "sac+logos+ava1-l14-linearMSE.pth"  # LAION's head file has "+" in its name
    head.write_bytes(b"")
    for ok in ("world3d-clip", "clip@openai/clip-vit-base-patch32", f"0.5*clip+0.5*aesthetic@{head}",
               "test_rewards:mean_brightness", f"world3d-clip@{tmp_path}"):
        assert spec_problem(ok) is None, ok
    assert "unknown reward" in spec_problem("dragon-score")
    assert "no such file or folder" in spec_problem(f"aesthetic@{tmp_path / 'none.pth'}")
    assert "empty term" in spec_problem("clip+")
