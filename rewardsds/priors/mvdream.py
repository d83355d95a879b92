"""MVDream's diffusers port (the layout of ashawkey/mvdream-sd2.1-diffusers) read as a `MultiViewPrior`.

The port is Stable Diffusion's folder layout with model_index.json's ``_class_name`` ``MVDreamPipeline`` and a
``unet/`` that holds MVDream's own ``MultiViewUNetModel``: its config.json is the original LDM U-Net's
parameters (``model_channels``, ``channel_mult``, ``num_res_blocks``, ``attention_resolutions``,
``num_head_channels`` or ``num_heads``, ``transformer_depth``, ``context_dim``, ``camera_dim``, ...) and its
weights keep the LDM module names (``input_blocks``, ``middle_block``, ``output_blocks``, ``out``,
``time_embed``, ``camera_embed``). That network is SD 2.x's U-Net with two additions, and a stock diffusers
`UNet2DConditionModel` expresses both:

* the camera MLP ``camera_embed`` (Linear camera_dim -> 4C, SiLU, Linear 4C -> 4C) whose output is added to
  the timestep embedding is diffusers' ``class_embed_type="projection"`` (a `TimestepEmbedding`,
  ``linear_1``, SiLU, ``linear_2``, added to the time embedding), fed the flattened camera as ``class_labels``;
* its 3D self-attention, ``(b f) l c -> b (f l) c`` around ``attn1`` only, is `MultiViewAttnProcessor`.

So `load_mvdream_unet` builds the diffusers config from the LDM parameters (`diffusers_unet_config`), renames
``camera_embed`` to the LDM class-label keys (``label_emb.0.*``) and lets diffusers' own LDM converter rename
the rest; a key left over or missing is an error, never a silent partial load. Only safetensors weights are
read (a pickled ``.bin`` can run code when loaded).

Camera: the port's ``get_camera`` is kiui's ``orbit_camera`` (OpenGL: this project's c2w at unit distance,
`priors.multiview`) with rows y and z exchanged and the new y negated, Blender's z-up world: the network reads
``camera_input(FLIP_YZ @ c2w)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

MVDREAM_UNET_CLASS = "MultiViewUNetModel"
"""unet/config.json ``_class_name`` of MVDream's own U-Net (the port's)"""
FLIP_YZ = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
"""OpenGL y-up -> Blender z-up, applied on the left of c2w (MVDream's ``convert_opengl_to_blender``)"""
WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors")
"""the port's unet weights, first found wins (the fp16 name is diffusers' ``variant="fp16"``)"""


class MVDreamConversionError(ValueError):
    """The port's unet/ cannot be read as a diffusers U-Net (unsupported option, missing or extra weights)."""


def is_mvdream_unet(folder: Path) -> bool:
    """Does ``folder/unet`` hold MVDream's own U-Net (reads its config.json only)?"""
    try:
        cfg = json.loads((Path(folder) / "unet" / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and cfg.get("_class_name") == MVDREAM_UNET_CLASS


def diffusers_unet_config(ldm: dict) -> dict:
    """The `UNet2DConditionModel` kwargs of an LDM multi-view U-Net's parameters (module docstring).

    Level i of ``channel_mult`` has attention when its downsampling rate 2**i is in ``attention_resolutions``;
    heads per level are channels / ``num_head_channels`` (diffusers' ``attention_head_dim`` counts heads)."""
    for key, ok in (("use_scale_shift_norm", False), ("resblock_updown", False), ("num_classes", None),
                    ("ip_dim", 0), ("dims", 2), ("conv_resample", True), ("num_attention_blocks", None)):
        if ldm.get(key, ok) != ok:
            raise MVDreamConversionError(f"MVDream U-Net option {key}={ldm[key]!r} has no diffusers equivalent here "
                                         f"(supported: {ok!r})")
    try:
        c, mult = int(ldm["model_channels"]), [int(m) for m in ldm["channel_mult"]]
        rates, camera = {int(r) for r in ldm["attention_resolutions"]}, int(ldm["camera_dim"])
        context = ldm["context_dim"]
        size, layers = int(ldm["image_size"]), ldm["num_res_blocks"]
    except (KeyError, TypeError, ValueError) as e:
        raise MVDreamConversionError(f"unet/config.json lacks an LDM U-Net parameter: {e}") from e
    if not isinstance(layers, int):
        raise MVDreamConversionError(f"num_res_blocks per level ({layers}) is not supported; one count for all")
    channels = [c * m for m in mult]
    head_ch, heads = int(ldm.get("num_head_channels", -1)), int(ldm.get("num_heads", -1))
    attn = [2 ** i in rates for i in range(len(mult))]
    return dict(
        sample_size=size, in_channels=int(ldm["in_channels"]), out_channels=int(ldm["out_channels"]),
        block_out_channels=tuple(channels), layers_per_block=layers,
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
        cross_attention_dim=int(context[0] if isinstance(context, (list, tuple)) else context),
        attention_head_dim=tuple(ch // head_ch for ch in channels) if head_ch > 0 else heads,
        transformer_layers_per_block=int(ldm.get("transformer_depth", 1)), use_linear_projection=True,
        class_embed_type="projection", projection_class_embeddings_input_dim=camera)


def _ldm_state(folder: Path) -> dict:
    from safetensors.torch import load_file

    unet = Path(folder) / "unet"
    path = next((unet / name for name in WEIGHTS if (unet / name).is_file()), None)
    if path is None:
        found = sorted(p.name for p in unet.glob("*.bin")) or ["no weights"]
        raise MVDreamConversionError(f"{str(unet)!r} has no {' or '.join(WEIGHTS)} ({', '.join(found)}); only "
                                     "safetensors are read (pickled weights can run code when loaded)")
    return load_file(str(path))


def convert_state(state: dict, config: dict) -> dict:
    """MVDream's LDM-named U-Net weights -> `UNet2DConditionModel` names for `config` (`diffusers_unet_config`)."""
    from diffusers.loaders.single_file_utils import LDM_UNET_KEY, convert_ldm_unet_checkpoint

    ldm = {LDM_UNET_KEY + k.replace("camera_embed.", "label_emb.0.", 1) if k.startswith("camera_embed.")
           else LDM_UNET_KEY + k: v for k, v in state.items()}
    try:
        return convert_ldm_unet_checkpoint(ldm, config)
    except KeyError as e:
        raise MVDreamConversionError(f"MVDream U-Net weights lack {e} for the configured shape") from e


def load_mvdream_unet(folder: Path, dtype: torch.dtype | None = None):
    """The port's unet/ as a diffusers `UNet2DConditionModel` with the camera class embedding (module docstring);
    `MVDreamConversionError` when it does not convert exactly."""
    from diffusers import UNet2DConditionModel

    ldm = json.loads((Path(folder) / "unet" / "config.json").read_text())
    config = diffusers_unet_config(ldm)
    state = _ldm_state(folder)
    unet = UNet2DConditionModel(**config)
    converted = convert_state(state, config)
    missing, unexpected = unet.load_state_dict(converted, strict=False)
    used = len(converted)
    if missing or unexpected or used != len(state):
        raise MVDreamConversionError(
            f"MVDream U-Net weights do not fit its config: {len(missing)} missing (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]}), {len(state) - used} not converted")
    return unet.to(dtype) if dtype is not None else unet
