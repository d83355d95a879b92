"""Train the world CLIP: a transformers `CLIPModel` with a tiny config, contrastive with hard negatives.

    python -m rewardsds.world.train_clip --out rewardsds/world/weights/clip

Loss (CLIP, Radford et al. 2021, plus hard negatives as extra text columns): for image i,
``-log softmax_j(s * <f_i, g_j>)[i]`` over the batch's captions *and* every image's hard-negative
captions; for caption i the usual text-to-image term. Light noise/blur augmentation so that the
reward stays meaningful on imperfect samples from the prior.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import tyro
from tqdm import tqdm

from .. import _compat
from . import training
from .negatives import hard_negatives
from .scenes import render, sample_batch, sample_scene
from .tokenizer import MAX_LENGTH, build_tokenizer


@dataclass
class ClipTrainConfig:
    out: Path = Path("rewardsds/world/weights/clip")
    work: Path = Path("runs/world/clip")
    """checkpoints live here (resumed automatically)"""
    steps: int = 3000
    batch: int = 128
    negatives: int = 3
    relation_focus: float = 1.0
    swap_pairs: float = 0.0
    """fraction of the batch replaced by position-swapped twins of relational scenes"""
    """probability that a relational caption's inverted relation is among its negatives"""
    lr: float = 1e-3
    seed: int = 0
    image_size: int = 32
    checkpoint_every: int = 250
    threads: int = 0
    """torch threads (0: leave torch's default)"""
    init: Path | None = None
    """start from a saved world CLIP (a second, fine-tuning stage) instead of random weights"""


def clip_config(vocab_size: int, image_size: int = 32, eos_token_id: int = 3):
    from transformers import CLIPConfig

    text = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=256, num_hidden_layers=3,
                num_attention_heads=4, max_position_embeddings=MAX_LENGTH, bos_token_id=2,
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


def to_pixel_values(x: torch.Tensor) -> torch.Tensor:
    return (x - 0.5) / 0.5  # matches the saved CLIPImageProcessor (mean = std = 0.5)


def swapped(scene):
    """The same two objects with their positions exchanged, captioned with the inverse relation."""
    from dataclasses import replace

    inverse = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
    a, b = scene.objects
    return replace(scene, objects=(replace(a, cx=b.cx, cy=b.cy), replace(b, cx=a.cx, cy=a.cy)),
                   relation=inverse[scene.relation])


def _batch(cfg: ClipTrainConfig, step: int, tok):
    seed = training.seed_for_step(cfg.seed, step)
    images, captions, scenes = sample_batch(seed, cfg.batch, cfg.image_size)
    rng = random.Random(seed + 7)
    if cfg.swap_pairs > 0:
        # replace the tail of the batch by position-swapped twins of relational scenes, so that the
        # batch holds both images of a pair and each is the other's hardest negative
        rel = [i for i, sc in enumerate(scenes) if sc.relation in ("left of", "right of", "above", "below")]
        k = min(len(rel), int(cfg.swap_pairs * cfg.batch))
        for j, i in enumerate(rel[:k]):
            dst = cfg.batch - 1 - j
            if dst <= i:
                break
            twin = swapped(scenes[i])
            scenes[dst] = twin
            captions[dst] = twin.caption(rng)
            images[dst] = render(twin, cfg.image_size).transpose(2, 0, 1)
    negs = [n for sc in scenes for n in hard_negatives(sc, rng, cfg.negatives, cfg.relation_focus)]
    enc = tok(captions + negs, padding="max_length", max_length=MAX_LENGTH, truncation=True,
              return_tensors="pt")
    g = torch.Generator().manual_seed(seed)
    return augment(torch.from_numpy(images), g), enc


def clip_loss(model, pixels, enc, batch: int) -> torch.Tensor:
    img = F.normalize(_compat.features(model.get_image_features(pixel_values=to_pixel_values(pixels))), dim=-1)
    txt = F.normalize(_compat.features(model.get_text_features(
        input_ids=enc.input_ids, attention_mask=enc.attention_mask)), dim=-1)
    logits = model.logit_scale.exp() * img @ txt.T  # B x (B + B*negatives)
    target = torch.arange(batch)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits[:, :batch].T, target))


@torch.no_grad()
def hard_negative_accuracy(model, tok, n: int = 300, split: str = "train", seed: int = 12345,
                           image_size: int = 32) -> float:
    """How often the true caption outscores every one of its hard negatives, on fresh renders."""
    from .negatives import all_hard_negatives
    from .scenes import render

    model.eval()
    rng = random.Random(seed)
    wins = 0
    for _ in range(n):
        sc = sample_scene(rng, split=split)
        texts = [sc.caption()] + all_hard_negatives(sc)
        enc = tok(texts, padding="max_length", max_length=MAX_LENGTH, return_tensors="pt")
        x = torch.from_numpy(render(sc, image_size).transpose(2, 0, 1)[None])
        img = F.normalize(_compat.features(model.get_image_features(pixel_values=to_pixel_values(x))), dim=-1)
        txt = F.normalize(_compat.features(model.get_text_features(**enc)), dim=-1)
        s = (img @ txt.T)[0]
        wins += int(s[0] > s[1:].max())
    return wins / n


def main(cfg: ClipTrainConfig) -> None:
    from transformers import CLIPImageProcessor, CLIPModel

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    tok = build_tokenizer()
    model = (CLIPModel.from_pretrained(cfg.init) if cfg.init is not None
             else CLIPModel(clip_config(len(tok), cfg.image_size, tok.eos_token_id)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.05)
    sched = training.warmup_cosine(opt, min(200, cfg.steps // 10), cfg.steps)
    ckpt = cfg.work / "checkpoint.pt"
    start = training.load_checkpoint(ckpt, model, opt, sched)
    t0, losses = time.time(), []
    model.train()
    for step in tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="clip"):
        pixels, enc = _batch(cfg, step, tok)
        loss = clip_loss(model, pixels, enc, cfg.batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100.0))
        losses.append(loss.item())
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            training.save_checkpoint(ckpt, model, opt, step + 1, sched)
            tqdm.write(f"step {step + 1} loss {np.mean(losses[-100:]):.4f}")
    acc = {s: hard_negative_accuracy(model, tok, split=s, image_size=cfg.image_size)
           for s in ("train", "heldout")}
    print(f"hard-negative accuracy on fresh renders: {acc}")
    model.save_pretrained(cfg.out)
    tok.save_pretrained(cfg.out)
    CLIPImageProcessor(size={"shortest_edge": cfg.image_size},
                       crop_size={"height": cfg.image_size, "width": cfg.image_size},
                       image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(cfg.out)
    training.write_record(cfg.out / "training_record.json", command=
                          "python -m rewardsds.world.train_clip", config={k: str(v) for k, v in
                          vars(cfg).items()}, steps=cfg.steps, seconds_this_run=round(time.time() - t0),
                          final_loss=float(np.mean(losses[-100:])) if losses else None,
                          hard_negative_accuracy=acc,
                          parameters=sum(p.numel() for p in model.parameters()))


if __name__ == "__main__":
    main(tyro.cli(ClipTrainConfig))
