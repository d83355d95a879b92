"""Train the 3D world's multi-view prior, the MVDream analogue (`rewardsds.priors.multiview`).

    python -m rewardsds.world3d.train.mvprior --threads 1 --steps 3000
    python -m rewardsds.world3d.train.mvprior --init rewardsds/world3d/weights/prior --lr 2e-4 --warmup 50

Each sample is ONE scene seen from one camera set (`world3d.data.sample_view_sets`: 4 views at azimuths
a, a+90, a+180, a+270 around one elevation in 0-60), with a view-free caption: the cameras, not words, say
where each view stands. The model is the world prior's `UNet2DConditionModel` (`world.train.prior.unet_config`)
plus the camera as its class embedding (`priors.multiview.CAMERA_UNET_KWARGS`, the unit-distance c2w
flattened) and self-attention across the 4 views (`set_multiview_attention`). Everything else is the world
prior trainer's (`world.train.prior`, reused): v-prediction with the cosine schedule, min-SNR-5, the
frozen 3D CLIP text tower, EMA weights exported, warm-up + cosine learning rate, 10% caption dropout (per
scene, so the 4 views of a sample lose their caption together), one timestep per scene (MVDream's sets
share it, as gen3d's candidates do), checkpoints and resume in ``--work``, ``--device``, ``--workers`` and
``--max-minutes``.

``--init`` takes a multi-view prior folder (continued training) or the single-view 3D prior
(``world3d/weights/prior``): its U-Net weights start this one, the camera embedding's last layer starts at
zero (so at step 0 the model is that prior, blind to the camera, as ControlNet starts its new branch), and
the views learn to attend to each other from there. The output folder has Stable Diffusion's layout with
`model_index.json`'s `_class_name` `paths.WORLD3D_MV_FAMILY` and a training record.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import tyro
from tqdm import tqdm

from rewardsds.priors.multiview import CAMERA_UNET_KWARGS, camera_input, set_multiview_attention
from rewardsds.world.train import common
from rewardsds.world.train.common import WorldSpec
from rewardsds.world.train.prior import _Encoder, ema_decay, load_text_tower, scheduler_config
from rewardsds.world.train.prior import unet_config as world_unet_config

from .. import data, paths
from .prior import Prior3DTrainConfig
from .spec import WORLD3D

WORLD3D_MV = dataclasses.replace(WORLD3D, family=paths.WORLD3D_MV_FAMILY, prior_data=partial(data.sample_batch,
                                                                                             view_prompts=False),
                                 prior_dir=paths.mvprior_dir)
"""the 3D world as the multi-view trainer names it (its batches are `data.sample_view_sets`)"""
COMMAND = "python -m rewardsds.world3d.train.mvprior"


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


def _command() -> str:
    return shlex.join([*COMMAND.split(), *sys.argv[1:]])


def _history(cfg: MVPriorTrainConfig, start: int) -> list[str]:
    """One line per launch in --work (work/history.json), this one appended."""
    path = Path(cfg.work) / "history.json"
    history = json.loads(path.read_text()) if path.exists() else []
    history.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {_command()} (threads {torch.get_num_threads()}, "
                   f"{'resumed at step ' + str(start) if start else 'from step 0'})")
    Path(cfg.work).mkdir(parents=True, exist_ok=True)
    common.atomic_write_text(path, json.dumps(history, indent=2) + "\n")
    return history


def export(cfg: MVPriorTrainConfig, ema_unet, text, tok, step: int, losses: list[float], seconds: float,
           history: list[str] | None = None) -> None:
    """The EMA U-Net, text tower, tokenizer, scheduler, model_index.json (the multi-view family) and the record."""
    from diffusers import DDIMScheduler

    out = Path(cfg.out)
    ema_unet.save_pretrained(out / "unet")
    text.save_pretrained(out / "text_encoder")
    tok.save_pretrained(out / "tokenizer")
    DDIMScheduler(**scheduler_config()).save_pretrained(out / "scheduler")
    common.atomic_write_text(out / "model_index.json", json.dumps({
        "_class_name": cfg.world.family, "unet": ["diffusers", "UNet2DConditionModel"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "AutoTokenizer"],
        "scheduler": ["diffusers", "DDIMScheduler"], "vae": None}, indent=2) + "\n")
    extra = {"history": history} if history else {}
    if cfg.init is not None:
        extra["init"] = str(cfg.init)
    common.write_record(out / "training_record.json", cfg, _command(), steps_done=step, seconds_last_run=round(seconds),
                        final_loss=float(np.mean(losses[-100:])) if losses else None,
                        final_loss_steps=min(100, len(losses)), views=cfg.views,
                        camera="class embedding of the unit-distance c2w, flattened (priors.multiview.camera_input)",
                        parameters=sum(p.numel() for p in ema_unet.parameters()), **extra)


def main(cfg: MVPriorTrainConfig) -> None:
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer

    common.setup(cfg)
    ema_offset = 0
    if cfg.init is not None:  # the init folder's frozen text encoder and its unet
        tok = AutoTokenizer.from_pretrained(cfg.init / "tokenizer")
        text = load_text_tower(cfg.init / "text_encoder")
        unet, multiview = init_unet(cfg.init, cfg.image_size)
        if multiview:  # continued training: the EMA keeps its horizon (world.train.prior.ema_decay)
            record = cfg.init / "training_record.json"
            ema_offset = int(json.loads(record.read_text()).get("steps_done") or 0) if record.exists() else 0
    else:
        tok = AutoTokenizer.from_pretrained(cfg.clip)
        text = load_text_tower(cfg.clip)
        unet = UNet2DConditionModel(**unet_config(cfg.image_size, text.config.hidden_size))
    set_multiview_attention(unet, cfg.views)
    dev = torch.device(cfg.device)
    unet.to(dev)
    text.to(dev)
    encode = _Encoder(tok, text, cfg.world.max_length)
    ema = copy.deepcopy(unet).requires_grad_(False)
    noise_sched = DDPMScheduler.from_config(scheduler_config())
    ac = noise_sched.alphas_cumprod
    snr = ac / (1 - ac)
    loss_weight = (torch.clamp(snr, max=5.0) / (snr + 1)).to(dev)  # min-SNR-5 for v-prediction
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = common.warmup_cosine(opt, cfg.warmup, cfg.steps)
    start, extra = common.load_checkpoint(cfg.checkpoint, unet, opt, sched)
    if start:
        ema.load_state_dict(extra["ema"])
    t0, losses, done = time.time(), [], start
    if cfg.export_only:
        export(cfg, ema.cpu(), text.cpu(), tok, start, losses, 0.0)
        return
    history = _history(cfg, start)
    batches = common.batches(partial(_batch, cfg), start, cfg.steps, cfg.workers)
    for step, (x0, noise, t, captions, c2w) in tqdm(zip(range(start, cfg.steps), batches), initial=start,
                                                    total=cfg.steps, desc="multi-view prior"):
        x0, noise, t = x0.to(dev), noise.to(dev), t.to(dev)
        x_t = noise_sched.add_noise(x0, noise, t)
        target = noise_sched.get_velocity(x0, noise, t)
        pred = unet(x_t, t, encoder_hidden_states=encode(captions), class_labels=camera_input(c2w).to(dev)).sample
        loss = (loss_weight[t] * (pred - target).pow(2).mean((1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        decay = ema_decay(cfg, step, ema_offset)
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.lerp_(p, 1 - decay)
        losses.append(loss.item())
        done = step + 1
        stop = common.out_of_time(cfg, t0) or done == cfg.stop_at
        if done % cfg.checkpoint_every == 0 or done == cfg.steps or stop:
            common.save_checkpoint(cfg.checkpoint, unet, opt, done, sched, ema=ema.state_dict())
            tqdm.write(f"step {done} loss {np.mean(losses[-100:]):.4f} ({time.time() - t0:.0f}s)")
        if stop:
            break
    export(cfg, ema.cpu(), text.cpu(), tok, done, losses, time.time() - t0, history)


if __name__ == "__main__":
    main(tyro.cli(MVPriorTrainConfig))
