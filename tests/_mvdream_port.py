"""A tiny random folder in the layout of MVDream's diffusers port (ashawkey/mvdream-sd2.1-diffusers): Stable
Diffusion's folders with model_index.json ``MVDreamPipeline`` and a ``unet/`` of MVDream's own
``MultiViewUNetModel`` - its LDM parameters in config.json, its weights under the LDM module names.

The weight names and shapes are written out here from the LDM U-Net's structure (MVDream's ``models.py`` /
``attention.py``: ResBlock ``in_layers``/``emb_layers``/``out_layers``/``skip_connection``, SpatialTransformer3D
``norm``/``proj_in``/``transformer_blocks``/``proj_out`` with GEGLU feed-forward and bias-free q/k/v, ``op``
downsamplers, ``conv`` upsamplers, ``time_embed`` and ``camera_embed`` MLPs), independently of the converter
under test, so a wrong or missing rename shows up as a key that does not load.
"""

from __future__ import annotations

import json
from pathlib import Path

LDM_CONFIG = {"_class_name": "MultiViewUNetModel", "image_size": 8, "in_channels": 4, "out_channels": 4,
              "model_channels": 32, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": [1, 2],
              "num_head_channels": 16, "transformer_depth": 1, "context_dim": 32, "camera_dim": 16,
              "use_checkpoint": False}
"""a 2-level LDM multi-view U-Net: 32 and 64 channels, attention at both, heads of 16 channels"""


def ldm_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Every weight of an LDM multi-view U-Net of `cfg` (LDM names) -> its shape."""
    c, mult, depth, ctx = cfg["model_channels"], cfg["channel_mult"], cfg["transformer_depth"], cfg["context_dim"]
    temb, n_res, rates = 4 * c, cfg["num_res_blocks"], set(cfg["attention_resolutions"])
    shapes: dict[str, tuple[int, ...]] = {}

    def linear(name, i, o, bias=True):
        shapes[f"{name}.weight"] = (o, i)
        if bias:
            shapes[f"{name}.bias"] = (o,)

    def conv(name, i, o, k=3):
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (o, i, k, k), (o,)

    def norm(name, ch):
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (ch,), (ch,)

    def resblock(name, i, o):
        norm(f"{name}.in_layers.0", i)
        conv(f"{name}.in_layers.2", i, o)
        linear(f"{name}.emb_layers.1", temb, o)
        norm(f"{name}.out_layers.0", o)
        conv(f"{name}.out_layers.3", o, o)
        if i != o:
            conv(f"{name}.skip_connection", i, o, k=1)

    def transformer(name, ch):
        norm(f"{name}.norm", ch)
        linear(f"{name}.proj_in", ch, ch)
        for d in range(depth):
            block = f"{name}.transformer_blocks.{d}"
            for attn, kv in (("attn1", ch), ("attn2", ctx)):
                linear(f"{block}.{attn}.to_q", ch, ch, bias=False)
                linear(f"{block}.{attn}.to_k", kv, ch, bias=False)
                linear(f"{block}.{attn}.to_v", kv, ch, bias=False)
                linear(f"{block}.{attn}.to_out.0", ch, ch)
            linear(f"{block}.ff.net.0.proj", ch, 8 * ch)  # GEGLU: value and gate
            linear(f"{block}.ff.net.2", 4 * ch, ch)
            for k in (1, 2, 3):
                norm(f"{block}.norm{k}", ch)
        linear(f"{name}.proj_out", ch, ch)

    linear("time_embed.0", c, temb)
    linear("time_embed.2", temb, temb)
    linear("camera_embed.0", cfg["camera_dim"], temb)
    linear("camera_embed.2", temb, temb)
    conv("input_blocks.0.0", cfg["in_channels"], c)
    skips, ch, rate, k = [c], c, 1, 1
    for level, m in enumerate(mult):
        for _ in range(n_res):
            resblock(f"input_blocks.{k}.0", ch, m * c)
            ch = m * c
            if rate in rates:
                transformer(f"input_blocks.{k}.1", ch)
            skips.append(ch)
            k += 1
        if level != len(mult) - 1:
            conv(f"input_blocks.{k}.0.op", ch, ch)
            skips.append(ch)
            k, rate = k + 1, rate * 2
    resblock("middle_block.0", ch, ch)
    transformer("middle_block.1", ch)
    resblock("middle_block.2", ch, ch)
    k = 0
    for level, m in reversed(list(enumerate(mult))):
        for i in range(n_res + 1):
            resblock(f"output_blocks.{k}.0", ch + skips.pop(), m * c)
            ch, j = m * c, 1
            if rate in rates:
                transformer(f"output_blocks.{k}.1", ch)
                j = 2
            if level and i == n_res:
                conv(f"output_blocks.{k}.{j}.conv", ch, ch)
                rate //= 2
            k += 1
    norm("out.0", ch)
    conv("out.2", c, cfg["out_channels"])
    return shapes


def build_tiny_mvdream_port(path: Path, seed: int = 0) -> Path:
    """The port's folder at `path`: `build_tiny_prior`'s text encoder, tokenizer, SD scheduler (epsilon) and VAE,
    and a random LDM multi-view U-Net of `LDM_CONFIG` in unet/ (safetensors)."""
    import shutil

    import torch
    from _builders import build_tiny_prior
    from safetensors.torch import save_file

    path = build_tiny_prior(Path(path), vae=True)
    shutil.rmtree(path / "unet")
    (path / "unet").mkdir()
    g = torch.Generator().manual_seed(seed)
    state = {k: 0.2 * torch.randn(s, generator=g) for k, s in ldm_shapes(LDM_CONFIG).items()}
    save_file(state, str(path / "unet" / "diffusion_pytorch_model.safetensors"))
    (path / "unet" / "config.json").write_text(json.dumps(LDM_CONFIG))
    (path / "model_index.json").write_text(json.dumps({
        "_class_name": "MVDreamPipeline", "unet": ["mvdream", "MultiViewUNetModel"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDIMScheduler"], "vae": ["diffusers", "AutoencoderKL"],
        "feature_extractor": [None, None], "image_encoder": [None, None]}))
    return path
