"""Building the models: SD-2.1-base's U-Net, VAE and OpenCLIP-H text tower, a CLIP byte-level tokenizer and the
PNDM scheduler config from their published configurations (or toy sizes for --tiny), with random weights,
saved in diffusers' layout (model_index.json ``StableDiffusionPipeline``), plus CLIP ViT-L/14 and a linear
aesthetic head; nothing is downloaded."""

from __future__ import annotations

import gc
import json
from pathlib import Path

# --- published configurations (stabilityai/stable-diffusion-2-1-base, openai/clip-vit-large-patch14) -------------

SD21_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True, act_fn="silu",
    norm_num_groups=32, norm_eps=1e-5, flip_sin_to_cos=True, freq_shift=0, downsample_padding=1)
SD21_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, act_fn="silu",
    norm_num_groups=32, sample_size=512, scaling_factor=0.18215)
SD21_TEXT = dict(  # OpenCLIP ViT-H/14's text tower as SD 2.x ships it (the last of 24 layers dropped)
    vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
    max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=512, bos_token_id=0,
    eos_token_id=2, pad_token_id=1)
SD21_SCHEDULER = dict(  # scheduler/scheduler_config.json of SD-2.1-base (PNDM; the prior reads it as DDIM)
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
    prediction_type="epsilon", set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1, clip_sample=False)
CLIP_L14 = dict(
    text_config=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                     num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                     bos_token_id=512, eos_token_id=513, pad_token_id=513),  # the local tokenizer's ids
    vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                       patch_size=14, image_size=224, hidden_act="quick_gelu"),
    projection_dim=768)

# --tiny: the same classes and layout at toy sizes (seconds on a CPU)
TINY_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 32),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=32, attention_head_dim=8, use_linear_projection=True, norm_num_groups=8)
TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8), layers_per_block=1,
    down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4,
    sample_size=16)
TINY_TEXT = dict(vocab_size=514, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                 max_position_embeddings=77, hidden_act="gelu", bos_token_id=0, eos_token_id=2, pad_token_id=1)
TINY_CLIP = dict(
    text_config=dict(vocab_size=514, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                     num_attention_heads=2, max_position_embeddings=77, bos_token_id=512, eos_token_id=513,
                     pad_token_id=513),
    vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                       patch_size=8, image_size=16),
    projection_dim=16)


def save_clip_tokenizer(path: Path, max_length: int = 77) -> None:
    """A CLIP tokenizer folder (vocab.json, merges.txt, tokenizer_config.json as SD's ``tokenizer/``): CLIP's
    byte-level BPE with no merges, so every byte is a token (514 tokens); prompts pad to ``max_length``."""
    from tokenizers.pre_tokenizers import ByteLevel

    chars = sorted(ByteLevel.alphabet())
    vocab = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (path / "merges.txt").write_text("#version: 0.2\n")
    (path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": max_length, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}))


def build_models(root: Path, tiny: bool) -> dict[str, str]:
    """Random-weight models saved under ``root``: ``sd21/`` (diffusers layout), ``clip/`` (CLIPModel +
    tokenizer + image processor) and ``aesthetic_head.safetensors`` (linear 768 -> 1). One model in memory
    at a time. Returns their paths."""
    import torch
    import transformers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    prior, clip = root / "sd21", root / "clip"
    for name, build in (("unet", lambda: UNet2DConditionModel(**(TINY_UNET if tiny else SD21_UNET))),
                        ("vae", lambda: AutoencoderKL(**(TINY_VAE if tiny else SD21_VAE))),
                        ("text_encoder", lambda: CLIPTextModel(CLIPTextConfig(**(TINY_TEXT if tiny else SD21_TEXT))))):
        model = build()
        model.save_pretrained(prior / name)
        del model
        gc.collect()
    save_clip_tokenizer(prior / "tokenizer")
    import diffusers

    (prior / "scheduler").mkdir(parents=True, exist_ok=True)  # the published file, clip_sample (DDIM's) included
    (prior / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "PNDMScheduler", "_diffusers_version": diffusers.__version__, **SD21_SCHEDULER,
         "trained_betas": None}, indent=2))

    (prior / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None], "requires_safety_checker": False, "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]}, indent=2))

    cfg = CLIPConfig(**(TINY_CLIP if tiny else CLIP_L14))
    model = CLIPModel(cfg)
    model.save_pretrained(clip)
    dim = cfg.projection_dim
    del model
    gc.collect()
    save_clip_tokenizer(clip)
    proc = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    size = cfg.vision_config.image_size
    proc(size={"shortest_edge": size}, crop_size={"height": size, "width": size}).save_pretrained(clip)
    head = torch.nn.Linear(dim, 1)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(root / "aesthetic_head.safetensors"))
    (root / "built.json").write_text(json.dumps({"tiny": tiny}))
    return paths(root)


def paths(root: Path) -> dict[str, str]:
    return {"prior": str(root / "sd21"), "clip": str(root / "clip"),
            "head": str(root / "aesthetic_head.safetensors")}
