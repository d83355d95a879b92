"""The tiny builders the tests share, written once (STYLE 2.6; diffusers' ``get_dummy_components``).

Each builds a small random model from kwargs and saves it in the folder layout its user-facing loader
reads, offline and in seconds: a diffusers prior (`build_tiny_prior`, `build_tiny_world_prior`), a
CLIP for CLIPScore (`build_tiny_clip`) and an aesthetic predictor (`build_tiny_aesthetic`). `redness`
is the reward the CLI and sweep tests pass as ``module:function``.

Imported as ``_builders`` (pytest puts tests/ on sys.path, and spawned sweep workers copy it) and as
``tests._builders`` (from `tests.helpers.rewards`); it holds only pure functions, so either is fine.
"""

from __future__ import annotations

from pathlib import Path

TINY_GEN3D = ["--steps", "2", "--n-noises", "2", "--views", "2", "--render-resolutions", "16", "--n-samples", "8",
              "--grid.resolutions", "8", "16", "--grid.features", "2", "--grid.hidden", "8", "--video-resolution", "16",
              "--video-frames", "2", "--mesh-resolution", "16", "--threads", "1", "--device", "cpu", "--no-progress"]
"""gen3d's options for a 2-step run on tiny models: a field at 16 px, 2 views, 2 candidates (tests only)"""

# torch is imported inside the builders: spawned sweep workers import this module for `redness` alone

# Scheduler configs of the two prior kinds the tests build. SD: Stable Diffusion's scaled-linear betas;
# WORLD: the embedded world prior's (rewardsds/world/weights/prior/scheduler: cosine betas, sample clipping).
SD_SCHEDULE = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "clip_sample": False}
WORLD_SCHEDULE = {"beta_schedule": "squaredcos_cap_v2", "clip_sample": True}


def redness(images, prompts):
    """A reward for tests (``--reward _sweep_helpers:redness`` or ``tests.helpers.rewards:redness``):
    the mean of the red channel minus the mean of the other two."""
    return images[:, 0].mean((1, 2)) - images[:, 1:].mean((1, 2, 3))


def _tiny_text_encoder(world3d: bool = False):
    """The world tokenizer (the 3D world's with `world3d`) and a 1-layer random CLIP text encoder over its
    vocabulary (seeded by the caller)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    if world3d:
        from rewardsds.world3d.tokenizer import MAX_LENGTH, build_tokenizer
    else:
        from rewardsds.world.tokenizer import MAX_LENGTH, build_tokenizer

    tok = build_tokenizer()
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=1, num_attention_heads=2,
                                        max_position_embeddings=MAX_LENGTH, bos_token_id=2,
                                        eos_token_id=tok.eos_token_id, pad_token_id=0))
    return tok, text


def tiny_multiview_unet(sample_size: int = 8, seed: int = 0):
    """A random 8x8 pixel-space `UNet2DConditionModel` of the multi-view shape (`priors.multiview`): the camera
    through a 16-d projection class embedding, cross-attention to 32-d text states."""
    import torch
    from diffusers import UNet2DConditionModel

    from rewardsds.priors.multiview import CAMERA_UNET_KWARGS

    torch.manual_seed(seed)
    return UNet2DConditionModel(sample_size=sample_size, in_channels=3, out_channels=3, block_out_channels=(32, 32),
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                layers_per_block=1, norm_num_groups=8, attention_head_dim=8, **CAMERA_UNET_KWARGS)


def build_tiny_multiview_prior(path: Path, family: str | None = None) -> Path:
    """A tiny random multi-view prior folder (`priors.multiview`): `tiny_multiview_unet`, the 3D world's
    tokenizer, the world's v-prediction cosine schedule, no VAE, and model_index.json naming `family`
    (default: the 3D world's multi-view family), loadable with `MultiViewPrior.from_pretrained` or --prior."""
    import json

    import torch
    from diffusers import DDIMScheduler

    from rewardsds.world3d.paths import WORLD3D_MV_FAMILY

    unet = tiny_multiview_unet()
    torch.manual_seed(1)
    tok, text = _tiny_text_encoder(world3d=True)
    path = Path(path)
    unet.save_pretrained(path / "unet")
    text.save_pretrained(path / "text_encoder")
    tok.save_pretrained(path / "tokenizer")
    DDIMScheduler(prediction_type="v_prediction", set_alpha_to_one=False, **WORLD_SCHEDULE).save_pretrained(
        path / "scheduler")
    (path / "model_index.json").write_text(json.dumps({
        "_class_name": family or WORLD3D_MV_FAMILY, "unet": ["diffusers", "UNet2DConditionModel"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "AutoTokenizer"],
        "scheduler": ["diffusers", "DDIMScheduler"], "vae": None}))
    return path


def build_tiny_prior(path: Path, vae: bool, prediction_type: str = "epsilon", schedule: dict | None = None) -> Path:
    """A tiny random diffusers prior in Stable Diffusion's folder layout (``unet/``, ``text_encoder/``,
    ``tokenizer/``, ``scheduler/`` and, with ``vae``, ``vae/``): an 8x8 U-Net over 4 latent channels
    decoded to 16x16 pixels, or over 3 pixel channels without a VAE. ``schedule``: the DDIM scheduler's
    betas and clipping (default `SD_SCHEDULE`). About 1 MB, seconds to build; seeded, so reproducible."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    tok, text = _tiny_text_encoder()
    ch = 4 if vae else 3
    unet = UNet2DConditionModel(sample_size=8, in_channels=ch, out_channels=ch, block_out_channels=(32, 32),
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                layers_per_block=1, norm_num_groups=8, attention_head_dim=8)
    sched = DDIMScheduler(prediction_type=prediction_type, set_alpha_to_one=False,
                          **(SD_SCHEDULE if schedule is None else schedule))
    path = Path(path)
    unet.save_pretrained(path / "unet")
    text.save_pretrained(path / "text_encoder")
    tok.save_pretrained(path / "tokenizer")
    sched.save_pretrained(path / "scheduler")
    if vae:
        AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8),
                      down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                      norm_num_groups=4, sample_size=16).save_pretrained(path / "vae")
    return path


def build_tiny_world_prior(path: Path) -> Path:
    """A random pixel-space prior shaped like the embedded world prior: no VAE, v-prediction, the
    world's cosine schedule with sample clipping (what `--prior` gets in the sweep tests)."""
    return build_tiny_prior(path, vae=False, prediction_type="v_prediction", schedule=WORLD_SCHEDULE)


def _save_image_processor(path: Path, size: int, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3)) -> None:
    """A CLIP image processor config with non-default statistics, so loaders that ignore it are caught."""
    import transformers

    cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    cls(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
        image_mean=list(mean), image_std=list(std)).save_pretrained(path)


def build_tiny_clip(path: Path, seed: int = 0) -> Path:
    """A random 2-layer `CLIPModel` (16x16 images, 8x8 patches, 16-d projection) with the world tokenizer
    and an image processor config, in the folder layout `CLIPScoreReward.from_pretrained` reads."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    from rewardsds.world.tokenizer import MAX_LENGTH, build_tokenizer

    torch.manual_seed(seed)
    tok = build_tokenizer()
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=MAX_LENGTH, bos_token_id=2,
                eos_token_id=tok.eos_token_id, pad_token_id=0)
    vision = dict(image_size=16, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2)
    path = Path(path)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(path)
    tok.save_pretrained(path)
    _save_image_processor(path, 16)
    return path


def build_tiny_aesthetic(path: Path, seed: int = 1) -> Path:
    """A random aesthetic predictor in the world-aesthetic layout (``vision/``: a 2-layer
    `CLIPVisionModelWithProjection` with its image processor; ``head.safetensors``: a linear head),
    loadable with ``world-aesthetic@<path>`` or `AestheticReward.from_pretrained`."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    cfg = CLIPVisionConfig(image_size=16, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2, projection_dim=12)
    path = Path(path)
    CLIPVisionModelWithProjection(cfg).save_pretrained(path / "vision")
    _save_image_processor(path / "vision", 16)
    head = torch.nn.Linear(12, 1)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(path / "head.safetensors"))
    return path


def build_tiny_world3d(path: Path) -> tuple[Path, Path]:
    """(3D CLIP folder, 3D prior folder) under ``path``, each trained by its real trainer for 2 steps at
    16 px with a checkpoint every step (work folders ``cw/``, ``pw/`` beside them): the 3D weights are not
    shipped, so the 3D tests train these once per session (the ``tiny3d`` fixture)."""
    from rewardsds.world3d.train.clip import Clip3DTrainConfig
    from rewardsds.world3d.train.clip import main as train_clip
    from rewardsds.world3d.train.prior import Prior3DTrainConfig
    from rewardsds.world3d.train.prior import main as train_prior

    path = Path(path)
    train_clip(Clip3DTrainConfig(out=path / "clip", work=path / "cw", steps=2, batch=4, image_size=16,
                                 checkpoint_every=1, threads=1))
    train_prior(Prior3DTrainConfig(clip=path / "clip", out=path / "prior", work=path / "pw", steps=2, batch=4,
                                   image_size=16, warmup=1, checkpoint_every=1, threads=1))
    return path / "clip", path / "prior"
