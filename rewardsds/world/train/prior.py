"""Train the world prior: a diffusers `UNet2DConditionModel` in pixel space, text-conditioned.

    python -m rewardsds.world.train.prior --clip rewardsds/world/weights/clip \
        --out rewardsds/world/weights/prior

Small-model choices (why): v-prediction with the cosine schedule (Salimans & Ho 2022; Nichol &
Dhariwal 2021) - better-conditioned targets at 32x32 than epsilon; min-SNR-5 loss weighting (Hang et
al. 2023) - faster convergence; EMA weights shipped; 10% caption dropout for classifier-free
guidance. The text encoder is the world CLIP's text tower, frozen, as CLIP is for Stable Diffusion.
The output folder has Stable Diffusion's layout (unet/, text_encoder/, tokenizer/, scheduler/), so
the same loader reads it.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import tyro
from tqdm import tqdm

from .. import paths
from ..paths import WORLD_FAMILY
from ..scenes import sample_batch
from ..tokenizer import MAX_LENGTH
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

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (0 <= self.ema < 1 and 0 <= self.uncond_prob <= 1):
            raise ValueError(f"ema must be in [0, 1) and uncond_prob in [0, 1], got {self.ema}, {self.uncond_prob}")
        if self.stop_at < 0:
            raise ValueError(f"stop_at must be >= 0 (0 = off), got {self.stop_at}")


def unet_config(image_size: int = 32, cross_attention_dim: int = 64) -> dict:
    return dict(sample_size=image_size, in_channels=3, out_channels=3, block_out_channels=(32, 64, 128),
                layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D",
                                                      "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                cross_attention_dim=cross_attention_dim, attention_head_dim=32, norm_num_groups=32)


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


class _Encoder:
    """Frozen text encoder with a per-caption cache (the grammar has few distinct captions)."""

    def __init__(self, tok, text):
        self.tok, self.text, self.cache = tok, text, {}

    @torch.no_grad()
    def __call__(self, captions: list[str]) -> torch.Tensor:
        missing = sorted({c for c in captions if c not in self.cache})
        if missing:
            enc = self.tok(missing, padding="max_length", max_length=MAX_LENGTH, truncation=True,
                           return_tensors="pt")
            states = self.text(input_ids=enc.input_ids).last_hidden_state
            self.cache.update(zip(missing, states))
        return torch.stack([self.cache[c] for c in captions])


def export(cfg: PriorTrainConfig, ema_unet, text, tok, step: int, losses: list[float], seconds: float):
    from diffusers import DDIMScheduler

    out = cfg.out
    ema_unet.save_pretrained(out / "unet")
    text.save_pretrained(out / "text_encoder")
    tok.save_pretrained(out / "tokenizer")
    DDIMScheduler(**scheduler_config()).save_pretrained(out / "scheduler")
    common.atomic_write_text(out / "model_index.json", json.dumps({
        "_class_name": WORLD_FAMILY, "unet": ["diffusers", "UNet2DConditionModel"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "AutoTokenizer"],
        "scheduler": ["diffusers", "DDIMScheduler"], "vae": None}, indent=2) + "\n")
    common.write_record(out / "training_record.json", cfg, f"python -m rewardsds.world.train.prior --steps {cfg.steps}",
                        steps_done=step, seconds_last_run=round(seconds),
                        final_loss=float(np.mean(losses[-100:])) if losses else None,
                        parameters=sum(p.numel() for p in ema_unet.parameters()))


def main(cfg: PriorTrainConfig) -> None:
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer

    common.setup(cfg)
    tok = AutoTokenizer.from_pretrained(cfg.clip)
    text = load_text_tower(cfg.clip)
    encode = _Encoder(tok, text)
    unet = UNet2DConditionModel(**unet_config(cfg.image_size, text.config.hidden_size))
    ema = copy.deepcopy(unet).requires_grad_(False)
    noise_sched = DDPMScheduler.from_config(scheduler_config())  # from_config ignores DDIM-only keys
    ac = noise_sched.alphas_cumprod
    snr = ac / (1 - ac)
    loss_weight = torch.clamp(snr, max=5.0) / (snr + 1)  # min-SNR-5 for v-prediction
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = common.warmup_cosine(opt, 200, cfg.steps)
    start, extra = common.load_checkpoint(cfg.checkpoint, unet, opt, sched)
    if start:
        ema.load_state_dict(extra["ema"])
    t0, losses, done = time.time(), [], start
    if cfg.export_only:
        export(cfg, ema, text, tok, start, losses, 0.0)
        return
    for step in tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="prior"):
        seed = common.seed_for_step(cfg.seed, step)
        images, captions, _ = sample_batch(seed, cfg.batch, cfg.image_size)
        g = torch.Generator().manual_seed(seed)
        drop = torch.rand(cfg.batch, generator=g) < cfg.uncond_prob
        captions = ["" if d else c for c, d in zip(captions, drop.tolist())]
        x0 = torch.from_numpy(images) * 2 - 1
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, 1000, (cfg.batch,), generator=g)
        x_t = noise_sched.add_noise(x0, noise, t)
        target = noise_sched.get_velocity(x0, noise, t)
        pred = unet(x_t, t, encoder_hidden_states=encode(captions)).sample
        loss = (loss_weight[t] * (pred - target).pow(2).mean((1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        decay = min(cfg.ema, (1 + step) / (10 + step))
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
    export(cfg, ema, text, tok, done, losses, time.time() - t0)


if __name__ == "__main__":
    main(tyro.cli(PriorTrainConfig))
