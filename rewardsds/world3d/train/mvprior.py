"""Train the 3D world's multi-view prior, the MVDream analogue (`rewardsds.priors.multiview`).

    python -m rewardsds.world3d.train.mvprior --threads 1 --steps 3000
    python -m rewardsds.world3d.train.mvprior --init rewardsds/world3d/weights/prior --lr 2e-4 --warmup 50

Each sample is ONE scene seen from one camera set (`world3d.data.sample_view_sets`: 4 views at azimuths
a, a+90, a+180, a+270 around one elevation in 0-60), with a view-free caption: the cameras, not words, say
where each view stands. The model is the world prior's `UNet2DConditionModel` (`world.train.prior.unet_config`)
plus the camera as its class embedding (`priors.multiview.CAMERA_UNET_KWARGS`, the unit-distance c2w
flattened) and self-attention across the 4 views (`set_multiview_attention`). Everything else is the world
prior trainer's: its loop and export (`world.train.prior.train`, run with this trainer's `Hooks`: the batches
below, the cameras as the U-Net's ``class_labels``, its command and record fields), so v-prediction with the
cosine schedule, min-SNR-5, the frozen 3D CLIP text tower, EMA weights exported, warm-up + cosine learning
rate, checkpoints and resume in ``--work``, ``--device``, ``--workers`` and ``--max-minutes``. The batches
drop 10% of the captions per scene (so the 4 views of a sample lose their caption together) and draw one
timestep per scene (MVDream's sets share it, as gen3d's candidates do).

``--init`` takes a multi-view prior folder (continued training) or the single-view 3D prior
(``world3d/weights/prior``): its U-Net weights start this one, the camera embedding's last layer starts at
zero (so at step 0 the model is that prior, blind to the camera, as ControlNet starts its new branch), and
the views learn to attend to each other from there. The output folder has Stable Diffusion's layout with
`model_index.json`'s `_class_name` `paths.WORLD3D_MV_FAMILY` and a training record.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import ClassVar

import torch
import tyro

from rewardsds.priors.multiview import CAMERA_UNET_KWARGS, camera_input, set_multiview_attention
from rewardsds.world.train import common
from rewardsds.world.train.common import WorldSpec
from rewardsds.world.train.prior import Hooks, init_steps, load_text, train
from rewardsds.world.train.prior import unet_config as world_unet_config

from .. import data, paths
from .prior import Prior3DTrainConfig
from .spec import WORLD3D

WORLD3D_MV = dataclasses.replace(WORLD3D, family=paths.WORLD3D_MV_FAMILY, prior_data=partial(data.sample_batch,
                                                                                             view_prompts=False),
                                 prior_dir=paths.mvprior_dir)
"""the 3D world as the multi-view trainer names it (its batches are `data.sample_view_sets`)"""


@dataclass
class MVPriorTrainConfig(Prior3DTrainConfig):  # the 3D prior's options (its --clip), the multi-view folder
    world: ClassVar[WorldSpec] = WORLD3D_MV
    out: Path = field(default_factory=paths.mvprior_dir)
    """the trained multi-view prior is written here (Stable Diffusion's folder layout)"""
    work: Path = Path("runs/world3d/mvprior")
    """checkpoints live here (resumed automatically)"""
    batch: int = 16
    """scenes per step (each seen from `views` cameras: batch x views images)"""
    views: int = 4
    """V: views per scene, azimuths 360/V apart (MVDream: 4)"""

    def __post_init__(self) -> None:
        if not 1 <= self.views <= 16:
            raise ValueError(f"views must be in [1, 16], got {self.views}")
        super().__post_init__()


def unet_config(image_size: int = 32, cross_attention_dim: int = 64) -> dict:
    """The world prior's U-Net with the camera as its class embedding."""
    return {**world_unet_config(image_size, cross_attention_dim), **CAMERA_UNET_KWARGS}


def _batch(cfg: MVPriorTrainConfig, step: int):
    """Step `step`'s (x0 [B*V,3,H,W] in [-1, 1], noise, t (one per scene), captions per row (10% of the scenes'
    dropped), c2w [B*V,4,4]), a function of (seed, step) alone."""
    seed = common.seed_for_step(cfg.seed, step)
    images, captions, _, c2w = data.sample_view_sets(seed, cfg.batch, cfg.image_size, cfg.views)
    g = torch.Generator().manual_seed(seed)
    drop = torch.rand(cfg.batch, generator=g) < cfg.uncond_prob
    rows = [("" if d else c) for c, d in zip(captions, drop.tolist()) for _ in range(cfg.views)]
    x0 = torch.from_numpy(images) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    t = torch.randint(0, 1000, (cfg.batch,), generator=g).repeat_interleave(cfg.views)
    return x0, noise, t, rows, c2w


def init_unet(folder: Path, image_size: int):
    """(U-Net, whether `folder` was multi-view already) from a prior folder's unet/: a multi-view U-Net as it
    is; a single-view one copied into the multi-view shape, the camera embedding's output layer zeroed."""
    from diffusers import UNet2DConditionModel

    src = UNet2DConditionModel.from_pretrained(folder / "unet")
    if src.config.sample_size != image_size:
        raise ValueError(f"--init unet was trained at {src.config.sample_size}px, --image-size is {image_size}")
    if all(src.config.get(k) == v for k, v in CAMERA_UNET_KWARGS.items()):
        return src.train(), True
    unet = UNet2DConditionModel.from_config({**src.config, **CAMERA_UNET_KWARGS})
    missing, unexpected = unet.load_state_dict(src.state_dict(), strict=False)
    if unexpected or any(not k.startswith("class_embedding.") for k in missing):
        raise ValueError(f"--init unet does not fit the multi-view shape: missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]}")
    with torch.no_grad():
        unet.class_embedding.linear_2.weight.zero_()
        unet.class_embedding.linear_2.bias.zero_()
    return unet.train(), False


def _camera_inputs(c2w: torch.Tensor) -> dict:
    """The batch's cameras as the U-Net's class embedding input."""
    return {"class_labels": camera_input(c2w)}


def _record(cfg: MVPriorTrainConfig) -> dict:
    """The training record's multi-view fields."""
    return {"views": cfg.views,
            "camera": "class embedding of the unit-distance c2w, flattened (priors.multiview.camera_input)"}


HOOKS = Hooks(batch=_batch, unet_inputs=_camera_inputs, script="mvprior", desc="multi-view prior", record=_record,
              init_record=lambda init: {"init": str(init)})
"""what the multi-view prior sets in the world prior's loop and export"""


def main(cfg: MVPriorTrainConfig) -> None:
    from diffusers import UNet2DConditionModel

    common.setup(cfg)
    tok, text = load_text(cfg)
    ema_offset = 0
    if cfg.init is not None:  # the init folder's unet (and, above, its text encoder)
        unet, multiview = init_unet(cfg.init, cfg.image_size)
        if multiview:  # continued training: the EMA keeps its horizon (world.train.prior.ema_decay)
            ema_offset = init_steps(cfg.init)
    else:
        unet = UNet2DConditionModel(**unet_config(cfg.image_size, text.config.hidden_size))
    set_multiview_attention(unet, cfg.views)
    train(cfg, unet, text, tok, ema_offset, HOOKS)


if __name__ == "__main__":
    main(tyro.cli(MVPriorTrainConfig))
