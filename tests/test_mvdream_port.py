"""MVDream's diffusers port as a multi-view prior (`priors.mvdream`): a tiny random folder of the port's layout
(`_mvdream_port`: LDM-named weights of MVDream's MultiViewUNetModel) loads through `MultiViewPrior.from_pretrained`
and `--prior FOLDER` exactly, reads the camera in MVDream's convention, and bad folders fail in one message."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from _mvdream_port import LDM_CONFIG, build_tiny_mvdream_port
from safetensors.torch import load_file, save_file

from rewardsds.priors.base import Conditioning
from rewardsds.priors.diffusers_prior import PriorLoadError
from rewardsds.priors.multiview import MultiViewPrior, camera_input
from rewardsds.priors.mvdream import FLIP_YZ, diffusers_unet_config
from rewardsds.render.cameras import orbit_cameras

os.environ.setdefault("HF_HUB_OFFLINE", "1")
WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    return build_tiny_mvdream_port(tmp_path_factory.mktemp("mvdream_port"))


def test_the_port_loads_with_every_weight_where_the_ldm_network_uses_it(port):
    prior = MultiViewPrior.from_pretrained(port)
    assert prior.views_per_sample == 4 and prior.family == "MVDreamPipeline" and prior.vae is not None
    assert prior.unet.config.attention_head_dim == (2, 4)  # heads of 16 channels at 32 and 64 channels
    ldm, unet = load_file(str(port / WEIGHTS)), prior.unet.state_dict()
    for diffusers_key, ldm_key in [
            ("class_embedding.linear_1.weight", "camera_embed.0.weight"),  # the camera MLP -> class embedding
            ("class_embedding.linear_2.bias", "camera_embed.2.bias"),
            ("time_embedding.linear_1.weight", "time_embed.0.weight"),
            ("conv_in.weight", "input_blocks.0.0.weight"),
            ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
             "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"),
            ("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
             "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"),
            ("down_blocks.0.downsamplers.0.conv.weight", "input_blocks.2.0.op.weight"),
            ("mid_block.attentions.0.proj_in.weight", "middle_block.1.proj_in.weight"),
            ("up_blocks.0.upsamplers.0.conv.weight", "output_blocks.1.2.conv.weight"),
            ("up_blocks.1.resnets.1.conv_shortcut.weight", "output_blocks.3.0.skip_connection.weight"),
            ("conv_out.weight", "out.2.weight")]:
        torch.testing.assert_close(unet[diffusers_key], ldm[ldm_key], msg=diffusers_key)


def test_the_camera_is_read_in_mvdreams_blender_frame(port):
    """MVDream's get_camera at elevation 0: kiui's OpenGL orbit pose with rows y, z -> -z, y, flattened."""
    prior = MultiViewPrior.from_pretrained(port)
    cams = orbit_cameras(0.0, torch.tensor([0.0, 90.0, 180.0, 270.0]), 2.0, 50.0).c2w
    emb = Conditioning(torch.zeros(4, 8, 32), torch.zeros(4, 8, 32), cams)
    got = prior._unet_inputs(emb, 4)["class_labels"][:4]
    front = [1, 0, 0, 0, 0, 0, -1, -1, 0, 1, 0, 0, 0, 0, 0, 1]  # eye (0, 0, 1) -> (0, -1, 0) in z-up
    right = [0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]  # azimuth 90: eye on +x, looking along -x
    torch.testing.assert_close(got[0], torch.tensor(front, dtype=torch.float32), atol=1e-6, rtol=0)
    torch.testing.assert_close(got[1], torch.tensor(right, dtype=torch.float32), atol=1e-6, rtol=0)
    torch.testing.assert_close(got, camera_input(FLIP_YZ @ cams))


def test_the_converted_unet_denoises_views_together_and_reads_cameras(port):
    prior = MultiViewPrior.from_pretrained(port)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 4, 8, 8, generator=g)
    t = torch.tensor(500)
    cams = orbit_cameras(15.0, torch.tensor([0.0, 90.0, 180.0, 270.0]), 2.0, 50.0).c2w
    cond = torch.randn(4, 8, 32, generator=g)
    emb = Conditioning(cond, torch.zeros_like(cond), cams)
    with torch.no_grad():
        base = prior.predict_eps(x, t, emb).cond
        x2 = x.clone()
        x2[3] += 1.0
        other_view = prior.predict_eps(x2, t, emb).cond
        turned = prior.predict_eps(x, t, Conditioning(cond, torch.zeros_like(cond), cams.roll(1, 0))).cond
    assert base.shape == (4, 4, 8, 8) and torch.isfinite(base).all()
    assert not torch.allclose(base[0], other_view[0])  # view 0 attends to view 3
    assert not torch.allclose(base, turned)  # the cameras enter


def _broken(port, tmp_path, name):
    dst = tmp_path / name
    shutil.copytree(port, dst)
    return dst


def test_bad_port_folders_fail_in_one_message(port, tmp_path):
    pickled = _broken(port, tmp_path, "bin")
    (pickled / WEIGHTS).rename(pickled / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(PriorLoadError, match="only safetensors"):
        MultiViewPrior.from_pretrained(pickled)
    half = _broken(port, tmp_path, "fp16")  # the port's weights under diffusers' fp16 variant name load too
    state = {k: v.half() for k, v in load_file(str(half / WEIGHTS)).items()}
    (half / WEIGHTS).unlink()
    save_file(state, str(half / "unet" / "diffusion_pytorch_model.fp16.safetensors"))
    assert MultiViewPrior.from_pretrained(half).unet.dtype == torch.float32
    short = _broken(port, tmp_path, "short")
    state = load_file(str(short / WEIGHTS))
    del state["middle_block.1.proj_in.weight"]
    save_file(state, str(short / WEIGHTS))
    with pytest.raises(PriorLoadError, match="lack|do not fit"):
        MultiViewPrior.from_pretrained(short)
    film = _broken(port, tmp_path, "film")
    (film / "unet" / "config.json").write_text(json.dumps({**LDM_CONFIG, "use_scale_shift_norm": True}))
    with pytest.raises(PriorLoadError, match="use_scale_shift_norm"):
        MultiViewPrior.from_pretrained(film)
    blind = _broken(port, tmp_path, "blind")
    (blind / "unet" / "config.json").write_text(json.dumps({**LDM_CONFIG, "camera_dim": None}))
    with pytest.raises(PriorLoadError, match="no camera input"):
        MultiViewPrior.from_pretrained(blind)


def test_sd21_shaped_parameters_give_stable_diffusion_2s_unet_config():
    """MVDream's sd-v2.1-base-4view parameters -> SD 2.1-base's U-Net plus the 16-d camera embedding."""
    cfg = diffusers_unet_config({"image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 320,
                                 "attention_resolutions": [4, 2, 1], "num_res_blocks": 2, "channel_mult": [1, 2, 4, 4],
                                 "num_head_channels": 64, "transformer_depth": 1, "context_dim": 1024,
                                 "camera_dim": 16, "use_checkpoint": False})
    assert cfg["block_out_channels"] == (320, 640, 1280, 1280) and cfg["attention_head_dim"] == (5, 10, 20, 20)
    assert cfg["down_block_types"] == ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
    assert cfg["up_block_types"] == ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3
    assert (cfg["cross_attention_dim"], cfg["use_linear_projection"], cfg["layers_per_block"]) == (1024, True, 2)
    assert (cfg["class_embed_type"], cfg["projection_class_embeddings_input_dim"]) == ("projection", 16)


def test_gen3d_runs_on_the_port_folder(port, tmp_path, capsys):
    from rewardsds.cli import main

    out = tmp_path / "run"
    code = main(["gen3d", "a big red cube", "--prior", str(port), "--reward", "tests.helpers.rewards:redness",
                 "--out", str(out), "--steps", "2", "--n-noises", "2", "--render-resolutions", "16", "--n-samples", "8",
                 "--grid.resolutions", "8", "16", "--grid.features", "2", "--grid.hidden", "8",
                 "--video-resolution", "16", "--video-frames", "2", "--mesh-resolution", "16", "--threads", "1",
                 "--device", "cpu", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["views"] == 4 and not config["view_dependent"]  # one camera set per step, cameras not words
    assert json.loads((out / "summary.json").read_text())["steps"] == 2
