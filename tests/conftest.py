import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(min(2, torch.get_num_threads()))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow")
    gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(gpu)


def build_tiny_prior(path, vae: bool, prediction_type: str = "epsilon"):
    """A tiny random diffusers prior in Stable Diffusion's folder layout (offline, seconds)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from rewardsds.world.tokenizer import build_tokenizer

    torch.manual_seed(0)
    tok = build_tokenizer()
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16,
                                        bos_token_id=2, eos_token_id=3, pad_token_id=0))
    ch = 4 if vae else 3
    unet = UNet2DConditionModel(sample_size=8, in_channels=ch, out_channels=ch, block_out_channels=(32, 32),
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                layers_per_block=1, norm_num_groups=8, attention_head_dim=8)
    sched = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                          prediction_type=prediction_type, clip_sample=False, set_alpha_to_one=False)
    unet.save_pretrained(path / "unet")
    text.save_pretrained(path / "text_encoder")
    tok.save_pretrained(path / "tokenizer")
    sched.save_pretrained(path / "scheduler")
    if vae:
        AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8),
                      down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                      norm_num_groups=4, sample_size=16).save_pretrained(path / "vae")
    return path


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory):
    return build_tiny_prior(tmp_path_factory.mktemp("tiny_sd"), vae=True)


@pytest.fixture(scope="session")
def tiny_pixel_dir(tmp_path_factory):
    return build_tiny_prior(tmp_path_factory.mktemp("tiny_pixel"), vae=False, prediction_type="v_prediction")
