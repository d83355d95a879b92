"""Train the world CLIP: a transformers `CLIPModel` with a tiny config, contrastive with hard negatives.

    python -m rewardsds.world.train.clip --out rewardsds/world/weights/clip

Loss (CLIP, Radford et al. 2021, plus hard negatives as extra text columns): for image i,
``-log softmax_j(s * <f_i, g_j>)[i]`` over the batch's captions *and* every image's hard-negative
captions; for caption i the usual text-to-image term. Light noise/blur augmentation so that the
reward stays meaningful on imperfect samples from the prior.

The world (data, tokenizer, hard negatives) is the config's ``world`` (`common.WorldSpec`): the 2D
world here, the 3D one through ``python -m rewardsds.world3d.train.clip``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import tyro
from tqdm import tqdm

from ... import _compat
from .. import paths
from ..tokenizer import MAX_LENGTH
from . import common


@dataclass
class ClipTrainConfig(common.TrainConfig):
    out: Path = field(default_factory=paths.clip_dir)
    """the trained CLIP is written here"""
    work: Path = Path("runs/world/clip")
    """checkpoints live here (resumed automatically)"""
    steps: int = 3000
    batch: int = 128
    negatives: int = 3
    relation_focus: float = 1.0
    """probability that a relational caption's inverted relation is among its negatives"""
    swap_pairs: float = 0.0
    """fraction of the batch replaced by position-swapped twins of relational scenes"""
    init: Path | None = None
    """start from a saved world CLIP (a second, fine-tuning stage) instead of random weights"""
    two_objects: float | None = None
    """share of two-object scenes in the batches (default: the world's own mix, half). More of them in a
    fine-tuning stage spends the steps on binding and relations, which a CLIP that already reads single
    objects gets wrong; worlds whose data has no such knob refuse it"""

    def __post_init__(self) -> None:
        super().__post_init__()
        common.object_mix(self.two_objects, self.world.clip_data, self.world.family)
        if self.swap_pairs > 0 and self.world.swap_pairs is None:
            raise ValueError(f"--swap-pairs must be 0: {self.world.family} batches captioned as asked have no "
                             "position-swapped twins")
        if self.negatives < 1:
            raise ValueError(f"negatives must be at least 1, got {self.negatives}")
        if not (0 <= self.relation_focus <= 1 and 0 <= self.swap_pairs <= 1):
            raise ValueError(f"relation_focus and swap_pairs must be in [0, 1], got {self.relation_focus}, "
                             f"{self.swap_pairs}")


def clip_config(vocab_size: int, image_size: int = 32, eos_token_id: int = 3, max_length: int = MAX_LENGTH):
    from transformers import CLIPConfig

    text = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=256, num_hidden_layers=3,
                num_attention_heads=4, max_position_embeddings=max_length, bos_token_id=2,
                eos_token_id=eos_token_id, pad_token_id=0)
    vision = dict(image_size=image_size, patch_size=4, hidden_size=96, intermediate_size=384,
                  num_hidden_layers=4, num_attention_heads=4, num_channels=3)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=64)


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random mild blur and noise, per image; x in [0,1]."""
    b = x.shape[0]
    blur = torch.rand(b, 1, 1, 1, generator=g) < 0.3
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=3)
    x = torch.where(blur, blurred, x)
    sigma = torch.rand(b, 1, 1, 1, generator=g) * 0.08
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


def _batch(cfg: ClipTrainConfig, tok, step: int):
    world = cfg.world
    seed = common.seed_for_step(cfg.seed, step)
    mix = common.object_mix(cfg.two_objects, world.clip_data, world.family)
    images, captions, scenes = world.clip_data(seed, cfg.batch, cfg.image_size, **mix)
    rng = random.Random(seed + 7)
    if cfg.swap_pairs > 0:
        world.swap_pairs(images, captions, scenes, cfg.swap_pairs, rng, cfg.image_size)
    tails = [world.caption_suffix(c) for c in captions] if world.caption_suffix else [""] * len(captions)
    negs = [n + tail for sc, tail in zip(scenes, tails)
            for n in world.hard_negatives(sc, rng, cfg.negatives, cfg.relation_focus)]
    enc = tok(captions + negs, padding="max_length", max_length=world.max_length, truncation=True,
              return_tensors="pt")
    g = torch.Generator().manual_seed(seed)
    return augment(torch.from_numpy(images), g), enc


def clip_loss(model, pixels, enc, batch: int) -> torch.Tensor:
    img = F.normalize(_compat.features(model.get_image_features(
        pixel_values=common.to_pixel_values(pixels))), dim=-1)
    txt = F.normalize(_compat.features(model.get_text_features(
        input_ids=enc.input_ids, attention_mask=enc.attention_mask)), dim=-1)
    logits = model.logit_scale.exp() * img @ txt.T  # B x (B + B*negatives)
    target = torch.arange(batch, device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits[:, :batch].T, target))


def main(cfg: ClipTrainConfig) -> None:
    from functools import partial

    from transformers import CLIPModel

    world = cfg.world
    common.setup(cfg)
    tok = world.build_tokenizer()
    model = (CLIPModel.from_pretrained(cfg.init) if cfg.init is not None
             else CLIPModel(clip_config(len(tok), cfg.image_size, tok.eos_token_id, world.max_length)))
    dev = torch.device(cfg.device)
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.05)
    sched = common.warmup_cosine(opt, min(200, cfg.steps // 10), cfg.steps)
    start, _ = common.load_checkpoint(cfg.checkpoint, model, opt, sched)
    t0, losses, done = time.time(), [], start
    model.train()
    data = common.batches(partial(_batch, cfg, tok), start, cfg.steps, cfg.workers)
    for step, (pixels, enc) in tqdm(zip(range(start, cfg.steps), data), initial=start, total=cfg.steps, desc="clip"):
        loss = clip_loss(model, pixels.to(dev), enc.to(dev), cfg.batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100.0))
        losses.append(loss.item())
        done = step + 1
        stop = common.out_of_time(cfg, t0)
        if done % cfg.checkpoint_every == 0 or done == cfg.steps or stop:
            common.save_checkpoint(cfg.checkpoint, model, opt, done, sched)
            tqdm.write(f"step {done} loss {np.mean(losses[-100:]):.4f}")
        if stop:
            break
    model.cpu()  # the accuracy check and the saved folder are the CPU model's
    acc = {s: world.clip_accuracy(model, tok, split=s, image_size=cfg.image_size)
           for s in ("train", "heldout")}
    print(f"hard-negative accuracy on fresh renders: {acc}")
    model.save_pretrained(cfg.out)
    tok.save_pretrained(cfg.out)
    common.image_processor(cfg.image_size).save_pretrained(cfg.out)
    common.write_record(cfg.out / "training_record.json", cfg, f"python -m {world.module}.clip",
                        steps=cfg.steps, steps_done=done, seconds_this_run=round(time.time() - t0),
                        final_loss=float(np.mean(losses[-100:])) if losses else None,
                        hard_negative_accuracy=acc, parameters=sum(p.numel() for p in model.parameters()))


if __name__ == "__main__":
    main(tyro.cli(ClipTrainConfig))
