"""Multi-view priors (MVDream, Shi et al. 2023): V views of ONE object denoised together, each told its camera.

A multi-view prior is a `DiffusionPrior` like any other - ``predict_eps(x_t, t, emb)``, `encode`/`decode` -
with two additions (STYLE 4, "Multi-view prior"):

* ``views_per_sample`` = V: the rows of ``x_t`` come in sets of V consecutive rows, row ``i*V + v`` being
  view v of sample i (`candidates.py` orders a RewardSDS candidate set so: one candidate = one set of views);
* the conditioning (`priors.base.Conditioning`) carries one camera per row, ``cameras`` [B,4,4].

Camera convention (the project's, `rewardsds.render.cameras`, written down once here and tested): the
camera-to-world matrix ``c2w`` holds the columns (right, up, back, eye) of a camera that looks along its
-z axis; the world is y-up; an orbit camera at elevation e, azimuth a sits at
``eye = d (cos e sin a, sin e, cos e cos a)``, so azimuth 0 is the front, on +z, and azimuth 90 is on +x.
The network reads `camera_input(c2w)`: the matrix with its translation scaled to unit length (MVDream's
``normalize_camera``: the distance is not an input), flattened row by row to 16 numbers.

The embedded multi-view prior (family `world3d.paths.WORLD3D_MV_FAMILY`, trained by
``python -m rewardsds.world3d.train.mvprior``) is a stock diffusers `UNet2DConditionModel` with

* the camera in its class embedding: ``class_embed_type="projection"``,
  ``projection_class_embeddings_input_dim=16`` (`CAMERA_UNET_KWARGS`; MVDream adds its camera MLP's output
  to the timestep embedding the same way);
* self-attention across the V views (`MultiViewAttnProcessor`: the views are folded into the token axis,
  ``[B*V, N, C] -> [B, V*N, C]``, for self-attention only; cross-attention to the text stays per view),
  installed by `set_multiview_attention` at load time, since diffusers saves no processors.

Folder layout: Stable Diffusion's (``model_index.json``, ``unet/``, ``text_encoder/``, ``tokenizer/``,
``scheduler/``, optional ``vae/``), with ``model_index.json``'s ``_class_name`` one of `MULTIVIEW_FAMILIES`.
The real MVDream's diffusers port (``_class_name`` ``MVDreamPipeline``, e.g. ashawkey/mvdream-sd2.1-diffusers)
loads too: its ``unet/`` is MVDream's own ``MultiViewUNetModel``, converted at load into the diffusers U-Net
above (`priors.mvdream`), and its camera is the same c2w in Blender's z-up world (``FLIP_YZ @ c2w``), which the
prior applies (`MultiViewPrior.camera_frame`) before `camera_input`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..world3d.paths import WORLD3D_MV_FAMILY
from .base import Conditioning
from .diffusers_prior import DiffusersPrior, PriorLoadError, check_layout
from .mvdream import FLIP_YZ, MVDREAM_UNET_CLASS, is_mvdream_unet, load_mvdream_unet

CAMERA_DIM = 16
"""the flattened 4x4 camera-to-world matrix"""
CAMERA_UNET_KWARGS = {"class_embed_type": "projection", "projection_class_embeddings_input_dim": CAMERA_DIM}
"""what makes a `UNet2DConditionModel` read a camera per row (through `class_labels`)"""
MULTIVIEW_FAMILIES: dict[str, int] = {WORLD3D_MV_FAMILY: 4, "MVDreamPipeline": 4}
"""``model_index.json`` ``_class_name`` of multi-view folders -> V, the views of one sample"""


def camera_input(c2w: torch.Tensor) -> torch.Tensor:
    """c2w [B,4,4] (module docstring) -> the network's camera input [B,16]: the translation scaled to
    unit length, then the matrix flattened row by row."""
    if c2w.dim() != 3 or c2w.shape[1:] != (4, 4):
        raise ValueError(f"cameras must be c2w matrices [B, 4, 4], got {tuple(c2w.shape)}")
    c = c2w.float().clone()
    c[:, :3, 3] = c[:, :3, 3] / c[:, :3, 3].norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return c.reshape(-1, CAMERA_DIM)


class MultiViewAttnProcessor:
    """Self-attention over all V views of a sample (MVDream's 3D self-attention), plain attention otherwise.

    Self-attention (no ``encoder_hidden_states``) folds the views into the token axis,
    ``[B*V, N, C] -> [B, V*N, C]``, so every token attends to the tokens of all V views; cross-attention
    to the text stays per view. With V = 1 this is diffusers' `AttnProcessor2_0`, exactly."""

    def __init__(self, views: int) -> None:
        from diffusers.models.attention_processor import AttnProcessor2_0

        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        self.views, self.inner = views, AttnProcessor2_0()

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, *args, **kwargs
                 ) -> torch.Tensor:
        v = self.views
        if encoder_hidden_states is not None or v == 1:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        if hidden_states.dim() != 3 or attention_mask is not None:
            # 4-D inputs carry a group norm whose statistics folding would mix across views
            raise ValueError("multi-view self-attention takes token inputs [B*V, N, C] without a mask")
        bv, n, c = hidden_states.shape
        if bv % v:
            raise ValueError(f"multi-view self-attention got {bv} rows, not a multiple of V = {v} (rows i*V + v)")
        out = self.inner(attn, hidden_states.reshape(bv // v, v * n, c), None, None, temb, *args, **kwargs)
        return out.reshape(bv, n, c)


def set_multiview_attention(unet, views: int) -> None:
    """Every self-attention (``attn1``) of `unet` spans the `views` views of a sample; every other
    attention gets diffusers' plain processor."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    unet.set_attn_processor({name: MultiViewAttnProcessor(views) if name.endswith("attn1.processor")
                             else AttnProcessor2_0() for name in unet.attn_processors})


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def folder_views(path: str | os.PathLike) -> int:
    """V of a prior folder: `MULTIVIEW_FAMILIES`' entry for its model_index.json family, 1 for any other
    folder, hub id or unreadable index (reads that file only)."""
    return MULTIVIEW_FAMILIES.get(str(_read_json(Path(path) / "model_index.json").get("_class_name", "")), 1)


def check_multiview_folder(folder: Path) -> int:
    """V of a multi-view prior folder, or `PriorLoadError` saying why the folder is not one."""
    folder = Path(folder)
    if not folder.exists():
        raise PriorLoadError(f"multi-view prior {str(folder)!r} does not exist (a multi-view prior loads from a "
                             "local folder)")
    check_layout(folder)
    family = str(_read_json(folder / "model_index.json").get("_class_name", ""))
    views = MULTIVIEW_FAMILIES.get(family)
    if views is None:
        raise PriorLoadError(f"{str(folder)!r} is not a multi-view model: its model_index.json names "
                             f"{family or 'no _class_name'!r}, not one of {', '.join(MULTIVIEW_FAMILIES)}")
    unet = _read_json(folder / "unet" / "config.json")
    kind = unet.get("_class_name")
    if kind == MVDREAM_UNET_CLASS:  # MVDream's own U-Net, converted at load (priors.mvdream)
        if not unet.get("camera_dim"):
            raise PriorLoadError(f"{str(folder)!r} ({family}): its {kind} has no camera input (camera_dim)")
        return views
    if kind != "UNet2DConditionModel":
        raise PriorLoadError(f"{str(folder)!r} ({family}) has a {kind!r} U-Net, not a diffusers UNet2DConditionModel "
                             f"or MVDream's {MVDREAM_UNET_CLASS}")
    got = {k: unet.get(k) for k in CAMERA_UNET_KWARGS}
    if got != CAMERA_UNET_KWARGS:
        raise PriorLoadError(f"{str(folder)!r} ({family}): its U-Net has no camera input ({got}); a multi-view "
                             f"U-Net reads the flattened c2w through its class embedding ({CAMERA_UNET_KWARGS})")
    return views


class MultiViewPrior(DiffusersPrior):
    """A diffusers multi-view prior (module docstring): `DiffusersPrior` plus cameras and V-view attention."""

    def __init__(self, unet, text_encoder, tokenizer, scheduler, vae=None, views: int = 4) -> None:
        super().__init__(unet, text_encoder, tokenizer, scheduler, vae)
        got = {k: unet.config.get(k) for k in CAMERA_UNET_KWARGS}
        if got != CAMERA_UNET_KWARGS:
            raise ValueError(f"a multi-view U-Net reads its camera through {CAMERA_UNET_KWARGS}, got {got}")
        self._views = 0
        self.set_views(views)
        self.camera_frame: torch.Tensor | None = None
        """4x4 applied on the left of every c2w before `camera_input` (MVDream's port: `mvdream.FLIP_YZ`)"""

    def set_views(self, views: int) -> None:
        """Make V = `views` (the attention processors span that many rows)."""
        set_multiview_attention(self.unet, views)
        self._views = views

    @property
    def views_per_sample(self) -> int:
        return self._views

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None, local_files_only: bool | None = None):
        """Load a multi-view prior folder (module docstring); `PriorLoadError` naming the problem when the
        folder is not one (another family, no camera input, MVDream's own U-Net class)."""
        views = check_multiview_folder(Path(path))
        prior = super().from_pretrained(path, device=device, dtype=dtype, local_files_only=True)
        if prior.views_per_sample != views:
            prior.set_views(views)
        if is_mvdream_unet(Path(path)):
            prior.camera_frame = FLIP_YZ.clone()
        return prior

    @classmethod
    def _load_unet(cls, path: str, dtype: torch.dtype, kw: dict):
        if is_mvdream_unet(Path(path)):
            return load_mvdream_unet(Path(path), dtype)
        return super()._load_unet(path, dtype, kw)

    def _unet_inputs(self, emb: Conditioning, rows: int) -> dict:
        v = self._views
        if rows % v:
            raise ValueError(f"a multi-view prior denoises sets of {v} views: got {rows} rows, not a multiple of "
                             f"{v} (row i*{v} + v is view v of sample i)")
        if emb.cameras is None or emb.cameras.shape[0] != rows:
            raise ValueError(f"a multi-view prior needs one camera per row in the conditioning (cameras "
                             f"[{rows}, 4, 4], c2w); got {None if emb.cameras is None else tuple(emb.cameras.shape)}")
        c2w = emb.cameras.to(self.device).float()
        if self.camera_frame is not None:
            c2w = self.camera_frame.to(c2w.device) @ c2w
        cams = camera_input(c2w).to(self.dtype)
        return {"class_labels": torch.cat([cams, cams])}
