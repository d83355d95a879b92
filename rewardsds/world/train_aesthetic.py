"""Train the world's aesthetic predictor: clean renders are beautiful, degraded ones are not.

    python -m rewardsds.world.train_aesthetic --threads 1

Same shape as the LAION predictor (rewardsds.rewards.aesthetic): a tiny `CLIPVisionModelWithProjection`
-> L2-normalised embedding -> ``Linear(64, 1)``, here trained from scratch, jointly. Each step draws a
batch of clean renders and a degraded copy of each (rewardsds.world.degrade: random kind, severity
s ~ U[0.1, 1]). Loss: regression to the rating ``8`` (clean) / ``8 - 6 s`` (degraded), MSE, plus the
pairwise ranking term ``softplus(r(degraded) - r(clean))`` (RankNet, Burges et al. 2005), which is
what reward-weighted sampling actually uses. Gate: the clean render outranks its degraded copy on
>= 90% of fresh pairs (severity ~ U[0.2, 1]), reported per degradation kind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import tyro
from tqdm import tqdm

from . import training
from .degrade import KINDS, degrade, random_degrade
from .scenes import sample_batch

GATE = 0.90
EVAL_SEED = 987_654_321  # far from every training seed (seed * 1_000_003 + step)


@dataclass
class AestheticTrainConfig:
    out: Path = Path("rewardsds/world/weights/aesthetic")
    work: Path = Path("runs/world/aesthetic")
    """checkpoints live here (resumed automatically)"""
    steps: int = 2500
    batch: int = 64
    """clean renders per step (each also contributes one degraded copy)"""
    lr: float = 1e-3
    head_lr_mult: float = 10.0
    rank_weight: float = 1.0
    min_severity: float = 0.1
    seed: int = 0
    image_size: int = 32
    checkpoint_every: int = 250
    eval_pairs: int = 1000
    """fresh clean renders for the final check; each is paired with one copy per degradation kind"""
    threads: int = 0
    """torch threads (0: leave torch's default)"""
    eval_only: bool = False
    """re-measure the ranking accuracy of the weights in `out` and update its record (no training)"""


def vision_config(image_size: int = 32):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(image_size=image_size, patch_size=4, hidden_size=64, intermediate_size=256,
                            num_hidden_layers=3, num_attention_heads=4, num_channels=3, projection_dim=64)


def to_pixel_values(x: torch.Tensor) -> torch.Tensor:
    return (x - 0.5) / 0.5  # matches the saved CLIPImageProcessor (mean = std = 0.5)


def rate(vision, head, x: torch.Tensor) -> torch.Tensor:
    """Ratings [B] of images in [0,1]: the reward's computation, without its resize (x is 32 px)."""
    return head(F.normalize(vision(pixel_values=to_pixel_values(x)).image_embeds, dim=-1)).squeeze(-1)


def loss_fn(vision, head, clean: torch.Tensor, degraded: torch.Tensor, severity: torch.Tensor,
            rank_weight: float) -> torch.Tensor:
    r = rate(vision, head, torch.cat([clean, degraded]))
    rc, rd = r[: clean.shape[0]], r[clean.shape[0]:]
    target = torch.cat([torch.full_like(rc, 8.0), 8.0 - 6.0 * severity])
    return F.mse_loss(r, target) + rank_weight * F.softplus(rd - rc).mean()


@torch.no_grad()
def ranking_accuracy(score: Callable[[torch.Tensor], torch.Tensor], n: int = 1000, image_size: int = 32,
                     seed: int = EVAL_SEED, low: float = 0.2, high: float = 1.0,
                     chunk: int = 250) -> dict[str, float]:
    """Share of fresh pairs where ``score(clean) > score(degraded copy)``, per kind and overall.

    ``score`` maps images [B,3,H,W] in [0,1] to ratings [B]; n clean renders, each degraded once by
    every kind with its own severity ~ U[low, high]."""
    clean = torch.from_numpy(sample_batch(seed, n, image_size)[0])
    g = torch.Generator().manual_seed(seed)
    s_clean = torch.cat([score(clean[i:i + chunk]) for i in range(0, n, chunk)])
    acc, wins = {}, []
    for kind in KINDS:
        sev = low + (high - low) * torch.rand(n, generator=g)
        bad = degrade(clean, kind, sev, g)
        s_bad = torch.cat([score(bad[i:i + chunk]) for i in range(0, n, chunk)])
        won = (s_clean > s_bad).float()
        acc[kind], wins = float(won.mean()), wins + [won]
    acc["overall"] = float(torch.cat(wins).mean())
    return acc


def _report(acc: dict[str, float]) -> None:
    print("ranking accuracy (clean over degraded, severity U[0.2,1], fresh renders):")
    for k, v in acc.items():
        print(f"  {k:>12}: {v:.3f}")
    print(f"gate >= {GATE}: {'PASS' if acc['overall'] >= GATE else 'FAIL'}")


def evaluate_saved(cfg: AestheticTrainConfig) -> dict[str, float]:
    """Score the saved reward exactly as users load it and refresh the record's accuracy."""
    import json

    from ..rewards.aesthetic import AestheticReward

    reward = AestheticReward.from_pretrained(cfg.out / "vision", cfg.out / "head.safetensors")
    acc = ranking_accuracy(lambda x: reward(x, [""] * x.shape[0]), cfg.eval_pairs, cfg.image_size)
    _report(acc)
    path = cfg.out / "training_record.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    record.update(ranking_accuracy=acc, gate=GATE, passed=acc["overall"] >= GATE,
                  evaluated=time.strftime("%Y-%m-%d %H:%M:%S"))
    training.atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return acc


def main(cfg: AestheticTrainConfig) -> dict[str, float]:
    from safetensors.torch import save_file
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.eval_only:
        return evaluate_saved(cfg)
    torch.manual_seed(cfg.seed)
    vision = CLIPVisionModelWithProjection(vision_config(cfg.image_size))
    head = torch.nn.Linear(vision.config.projection_dim, 1)
    with torch.no_grad():
        head.bias.fill_(5.0)  # mid-rating: Adam moves a bias by ~lr per step, so 0 -> 5 would take ages
    both = torch.nn.ModuleDict({"vision": vision, "head": head})  # one state dict for checkpoints
    # the head's weights must grow to rating scale (~6 / |embedding difference|): a larger step size
    opt = torch.optim.AdamW([{"params": vision.parameters(), "lr": cfg.lr},
                             {"params": head.parameters(), "lr": cfg.lr * cfg.head_lr_mult}],
                            weight_decay=0.05)
    sched = training.warmup_cosine(opt, 100, cfg.steps)
    ckpt = cfg.work / "checkpoint.pt"
    start = training.load_checkpoint(ckpt, both, opt, sched)
    t0, losses = time.time(), []
    both.train()
    for step in tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="aesthetic"):
        seed = training.seed_for_step(cfg.seed, step)
        clean = torch.from_numpy(sample_batch(seed, cfg.batch, cfg.image_size)[0])
        bad, _, sev = random_degrade(clean, torch.Generator().manual_seed(seed), cfg.min_severity, 1.0)
        loss = loss_fn(vision, head, clean, bad, sev, cfg.rank_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            training.save_checkpoint(ckpt, both, opt, step + 1, sched)
            tqdm.write(f"step {step + 1} loss {np.mean(losses[-100:]):.4f}")
    both.eval()
    acc = ranking_accuracy(lambda x: rate(vision, head, x), cfg.eval_pairs, cfg.image_size)
    _report(acc)
    vision.save_pretrained(cfg.out / "vision")
    CLIPImageProcessor(size={"shortest_edge": cfg.image_size},
                       crop_size={"height": cfg.image_size, "width": cfg.image_size},
                       image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(cfg.out / "vision")
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(cfg.out / "head.safetensors"))
    training.write_record(cfg.out / "training_record.json",
                          command="python -m rewardsds.world.train_aesthetic",
                          config={k: str(v) for k, v in vars(cfg).items()}, steps=cfg.steps,
                          seconds_this_run=round(time.time() - t0),
                          final_loss=float(np.mean(losses[-100:])) if losses else None,
                          ranking_accuracy=acc, gate=GATE, passed=acc["overall"] >= GATE,
                          parameters=sum(p.numel() for p in both.parameters()))
    return acc


if __name__ == "__main__":
    main(tyro.cli(AestheticTrainConfig))
