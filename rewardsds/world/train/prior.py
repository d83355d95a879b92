"""Train the world prior: a diffusers `UNet2DConditionModel` in pixel space, text-conditioned.

    python -m rewardsds.world.train.prior --clip rewardsds/world/weights/clip \
        --out rewardsds/world/weights/prior

Continued training from an existing prior folder (``--init``): its unet weights start both the model
and the EMA, its text_encoder/ and tokenizer/ are reused (still frozen), and a fresh AdamW + warm-up +
cosine schedule spans the new ``--steps``; pass a new ``--seed`` so the batches differ from the first run:

    python -m rewardsds.world.train.prior --init rewardsds/world/weights/prior --seed 1 --lr 2e-4 \
        --warmup 50 --steps 1200 --work runs/world/prior_ft --out runs/world/prior_ft/weights

Small-model choices (why): v-prediction with the cosine schedule (Salimans & Ho 2022; Nichol &
Dhariwal 2021) - better-conditioned targets at 32x32 than epsilon; min-SNR-5 loss weighting (Hang et
al. 2023) - faster convergence; EMA weights shipped; 10% caption dropout for classifier-free
guidance. The text encoder is the world CLIP's text tower, frozen, as CLIP is for Stable Diffusion.
The output folder has Stable Diffusion's layout (unet/, text_encoder/, tokenizer/, scheduler/), so
the same loader reads it. The world (data, family name) is the config's ``world`` (`common.WorldSpec`):
the 2D world here, the 3D one (view-suffixed captions) through ``python -m rewardsds.world3d.train.prior``.
The loop (`train`) and `export` also serve the 3D world's multi-view prior (``rewardsds.world3d.train.mvprior``),
which sets their `Hooks`: its batches, the cameras as extra U-Net inputs, its command and record fields.
"""

from __future__ import annotations

import copy
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import tyro
from tqdm import tqdm

from .. import paths
from . import common


@dataclass
class PriorTrainConfig(common.TrainConfig):
    clip: Path = field(default_factory=paths.clip_dir)
    """the world CLIP whose text tower conditions the prior"""
    out: Path = field(default_factory=paths.prior_dir)
    """the trained prior is written here (Stable Diffusion's folder layout)"""
    work: Path = Path("runs/world/prior")
    """checkpoints live here (resumed automatically)"""
    steps: int = 3000
    batch: int = 64
    lr: float = 5e-4
    checkpoint_every: int = 100
    ema: float = 0.999
    uncond_prob: float = 0.1
    export_only: bool = False
    stop_at: int = 0
    """stop (and export) after this step, keeping the learning-rate schedule of --steps; 0 = off"""
    warmup: int = 200
    """linear learning-rate warm-up steps before the cosine decay over --steps"""
    init: Path | None = None
    """continue training from this prior folder (model_index.json, unet/, text_encoder/, tokenizer/):
    its unet starts the model and the EMA, its text encoder and tokenizer are used (--clip is ignored);
    the optimiser and the schedule start afresh. A checkpoint in --work still takes precedence (resume).
    The EMA decay carries on from the init folder's step count (its training_record.json's steps_done),
    so the EMA averages over the same horizon as at the end of the first run."""

    two_objects: float | None = None
    """share of two-object scenes in the batches (default: the world's own mix, half); more of
    them trains relations harder (a continued run with --init); worlds whose data has no such knob refuse it"""

    def __post_init__(self) -> None:
        super().__post_init__()
        common.object_mix(self.two_objects, self.world.prior_data, self.world.family)
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.init is not None:
            self.init = Path(self.init)
            missing = [n for n in ("model_index.json", "unet", "text_encoder", "tokenizer")
                       if not (self.init / n).exists()]
            if missing:
                raise ValueError(f"--init {str(self.init)!r} is not a prior folder: missing {', '.join(missing)}")
            if Path(self.out).resolve() == self.init.resolve():
                raise ValueError(f"--out must differ from --init ({str(self.init)!r}): never overwrite the "
                                 "weights a run starts from")
        if not (0 <= self.ema < 1 and 0 <= self.uncond_prob <= 1):
            raise ValueError(f"ema must be in [0, 1) and uncond_prob in [0, 1], got {self.ema}, {self.uncond_prob}")
        if self.stop_at < 0:
            raise ValueError(f"stop_at must be >= 0 (0 = off), got {self.stop_at}")


HEAD_DIM = 32
"""channels per attention head of the world priors' U-Net"""


def unet_config(image_size: int = 32, cross_attention_dim: int = 64) -> dict:
    """The world priors' U-Net (4.1 M parameters). diffusers' UNet2DConditionModel reads its
    `attention_head_dim` as the number of heads (a naming slip it keeps for old checkpoints), so the heads
    are given per block, channels / HEAD_DIM. The shipped world priors were trained with
    `attention_head_dim=32`, i.e. 32 heads of 2-4 channels, which their config.json keeps: same parameters,
    a different attention, and a forward pass 2.0x slower on CPU (scripts/bench_unet_heads.py: 32 images,
    one thread), most of it the softmax over 32 score maps where 2-4 do."""
    channels = (32, 64, 128)
    return dict(sample_size=image_size, in_channels=3, out_channels=3, block_out_channels=channels,
                layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D",
                                                      "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                cross_attention_dim=cross_attention_dim, attention_head_dim=tuple(c // HEAD_DIM for c in channels),
                norm_num_groups=32)


def scheduler_config() -> dict:
    return dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                clip_sample=True, set_alpha_to_one=False, steps_offset=1, timestep_spacing="trailing")


def load_text_tower(clip_dir: Path):
    """The CLIP text tower as a standalone `CLIPTextModel` (what Stable Diffusion ships)."""
    from transformers import CLIPTextModel

    from ..._compat import quiet_loading

    quiet_loading()  # the vision tower's weights are "unexpected" here, by design
    # transformers maps a CLIPModel checkpoint's text_model.* weights onto CLIPTextModel
    return CLIPTextModel.from_pretrained(clip_dir).eval().requires_grad_(False)


def _command(world: common.WorldSpec = common.WORLD, script: str = "prior") -> str:
    """The exact command line of this run (``python -m <world.module>.<script> ...``)."""
    return shlex.join(["python", "-m", f"{world.module}.{script}", *sys.argv[1:]])


def _history(cfg: PriorTrainConfig, start: int, command: str) -> list[str]:
    """One line per launch in --work (work/history.json), this one appended."""
    path = Path(cfg.work) / "history.json"
    history = json.loads(path.read_text()) if path.exists() else []
    history.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {command} (threads {torch.get_num_threads()}, "
                   f"{'resumed at step ' + str(start) if start else 'from step 0'})")
    Path(cfg.work).mkdir(parents=True, exist_ok=True)
    common.atomic_write_text(path, json.dumps(history, indent=2) + "\n")
    return history


def init_steps(init: Path | None) -> int:
    """Steps the --init prior was trained for (0 without --init or without a record)."""
    rec_path = Path(init) / "training_record.json" if init is not None else None
    if rec_path is None or not rec_path.exists():
        return 0
    return int(json.loads(rec_path.read_text()).get("steps_done") or 0)


def ema_decay(cfg: PriorTrainConfig, step: int, offset: int = 0) -> float:
    """The EMA warm-up min(ema, (1 + k) / (10 + k)), k counted from the first run's step 0: from --init,
    k = init steps + step, so the EMA keeps the horizon it had (about 150 steps at k = 1300) instead of
    restarting its warm-up (which would let it follow the first noisy steps) or jumping to the full 0.999
    (a 1000-step horizon: a short continued run would barely move the exported weights)."""
    k = offset + step
    return min(cfg.ema, (1 + k) / (10 + k))


def _init_fields(init: Path) -> dict:
    """The record's fields on --init: what its folder's own training record says (steps, loss, command,
    history), the EMA's step offset and a note."""
    rec_path = Path(init) / "training_record.json"
    rec = json.loads(rec_path.read_text()) if rec_path.exists() else {}
    return {"init": {"folder": str(init), **{k: rec[k] for k in ("command", "steps_done", "final_loss",
                                                                  "seconds_total", "history", "text_encoder")
                                             if k in rec}},
            "ema_step_offset": init_steps(init),
            "note": "continued training: steps_done counts the steps of this run only, on top of the init "
                    "folder's own steps"}


class _Encoder:
    """Frozen text encoder with a per-caption cache (the grammar has few distinct captions)."""

    def __init__(self, tok, text, max_length: int):
        self.tok, self.text, self.max_length, self.cache = tok, text, max_length, {}

    @torch.no_grad()
    def __call__(self, captions: list[str]) -> torch.Tensor:
        missing = sorted({c for c in captions if c not in self.cache})
        if missing:
            enc = self.tok(missing, padding="max_length", max_length=self.max_length, truncation=True,
                           return_tensors="pt")
            states = self.text(input_ids=enc.input_ids.to(self.text.device)).last_hidden_state
            self.cache.update(zip(missing, states))
        return torch.stack([self.cache[c] for c in captions])


def _batch(cfg: PriorTrainConfig, step: int):
    """Step `step`'s (x0 in [-1, 1], noise, t, captions with 10% dropped), a function of (seed, step) alone."""
    seed = common.seed_for_step(cfg.seed, step)
    mix = common.object_mix(cfg.two_objects, cfg.world.prior_data, cfg.world.family)
    images, captions, _ = cfg.world.prior_data(seed, cfg.batch, cfg.image_size, **mix)
    g = torch.Generator().manual_seed(seed)
    drop = torch.rand(cfg.batch, generator=g) < cfg.uncond_prob
    captions = ["" if d else c for c, d in zip(captions, drop.tolist())]
    x0 = torch.from_numpy(images) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    t = torch.randint(0, 1000, (cfg.batch,), generator=g)
    return x0, noise, t, captions


@dataclass(frozen=True)
class Hooks:
    """What a prior trainer sets in the shared loop (`train`) and `export`; the defaults are the world prior's
    (`PRIOR_HOOKS`). The multi-view prior (``rewardsds.world3d.train.mvprior``) sets each of them."""

    batch: Callable[[Any, int], tuple] = _batch
    """(cfg, step) -> (x0, noise, t, captions, *extra), a function of (seed, step) alone; module-level (or a
    partial of one), so that --workers can pickle it"""
    unet_inputs: Callable[..., dict] | None = None
    """(*extra) -> the U-Net's further keyword arguments for the batch (CPU tensors; the loop moves them to
    --device), e.g. the cameras as ``class_labels``; None: none"""
    script: str = "prior"
    """the module under the world's ``module`` that the history and the training record name"""
    desc: str = "prior"
    """the progress bar's label"""
    record: Callable[[Any], dict] | None = None
    """cfg -> the record's own fields (after the final loss, before the parameter count); None: none"""
    init_record: Callable[[Path], dict] = _init_fields
    """the --init folder -> the record's fields about it (after the history)"""


PRIOR_HOOKS = Hooks()


def load_text(cfg: PriorTrainConfig):
    """(tokenizer, frozen text tower): the --init folder's when continuing, else the --clip's."""
    from transformers import AutoTokenizer

    if cfg.init is not None:
        return AutoTokenizer.from_pretrained(cfg.init / "tokenizer"), load_text_tower(cfg.init / "text_encoder")
    return AutoTokenizer.from_pretrained(cfg.clip), load_text_tower(cfg.clip)


def export(cfg: PriorTrainConfig, ema_unet, text, tok, step: int, losses: list[float], seconds: float,
           history: list[str] | None = None, hooks: Hooks = PRIOR_HOOKS) -> None:
    """The EMA U-Net, text tower, tokenizer, scheduler, model_index.json (the world's family) and the record."""
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
        extra.update(hooks.init_record(cfg.init))
    common.write_record(out / "training_record.json", cfg, _command(cfg.world, hooks.script),
                        steps_done=step, seconds_last_run=round(seconds),
                        final_loss=float(np.mean(losses[-100:])) if losses else None,
                        final_loss_steps=min(100, len(losses)), **(hooks.record(cfg) if hooks.record else {}),
                        parameters=sum(p.numel() for p in ema_unet.parameters()), **extra)


def train(cfg: PriorTrainConfig, unet, text, tok, ema_offset: int = 0, hooks: Hooks = PRIOR_HOOKS) -> None:
    """The prior's training loop, from the last checkpoint in --work (if any) to --steps (or --stop-at,
    --max-minutes), then `export`: v-prediction, min-SNR-5, AdamW with warm-up + cosine, EMA (its warm-up
    offset by `ema_offset` steps, `ema_decay`), a checkpoint every --checkpoint-every steps. `unet` is built
    (and `common.setup` called) by the caller; `hooks` say what differs between the prior trainers."""
    from diffusers import DDPMScheduler

    dev = torch.device(cfg.device)
    unet.to(dev)
    text.to(dev)
    encode = _Encoder(tok, text, cfg.world.max_length)
    ema = copy.deepcopy(unet).requires_grad_(False)
    noise_sched = DDPMScheduler.from_config(scheduler_config())  # from_config ignores DDIM-only keys
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
        export(cfg, ema.cpu(), text.cpu(), tok, start, losses, 0.0, hooks=hooks)
        return
    history = _history(cfg, start, _command(cfg.world, hooks.script))
    data = common.batches(partial(hooks.batch, cfg), start, cfg.steps, cfg.workers)
    for step, (x0, noise, t, captions, *more) in tqdm(zip(range(start, cfg.steps), data), initial=start,
                                                      total=cfg.steps, desc=hooks.desc):
        x0, noise, t = x0.to(dev), noise.to(dev), t.to(dev)
        x_t = noise_sched.add_noise(x0, noise, t)
        target = noise_sched.get_velocity(x0, noise, t)
        inputs = {k: v.to(dev) for k, v in hooks.unet_inputs(*more).items()} if hooks.unet_inputs else {}
        pred = unet(x_t, t, encoder_hidden_states=encode(captions), **inputs).sample
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
    export(cfg, ema.cpu(), text.cpu(), tok, done, losses, time.time() - t0, history, hooks)


def main(cfg: PriorTrainConfig) -> None:
    from diffusers import UNet2DConditionModel

    common.setup(cfg)
    tok, text = load_text(cfg)
    if cfg.init is not None:  # continued training: the init folder's unet (and, above, its text encoder)
        unet = UNet2DConditionModel.from_pretrained(cfg.init / "unet")
        if unet.config.sample_size != cfg.image_size:
            raise ValueError(f"--init unet was trained at {unet.config.sample_size}px, --image-size is "
                             f"{cfg.image_size}")
        unet.train()
    else:
        unet = UNet2DConditionModel(**unet_config(cfg.image_size, text.config.hidden_size))
    train(cfg, unet, text, tok, init_steps(cfg.init))


if __name__ == "__main__":
    main(tyro.cli(PriorTrainConfig))
