"""Train the world's aesthetic predictor: clean renders are beautiful, degraded ones are not.

    python -m rewardsds.world.train.aesthetic --threads 1

Same shape as the LAION predictor (rewardsds.rewards.aesthetic): a tiny `CLIPVisionModelWithProjection`
-> L2-normalised embedding -> ``Linear(64, 1)``, here trained from scratch, jointly. Each step draws a
batch of clean renders and a degraded copy of each (rewardsds.world.degrade: random kind, severity
s ~ U[0.1, 1]). Loss: regression to the rating ``8`` (clean) / ``8 - 6 s`` (degraded), MSE, plus the
pairwise ranking term ``softplus(r(degraded) - r(clean))`` (RankNet, Burges et al. 2005), which is
what reward-weighted sampling actually uses. Gate: the clean render outranks its degraded copy on
>= 90% of fresh pairs (severity ~ U[0.2, 1]; `world.metrics.ranking_accuracy`), reported per
degradation kind.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import tyro
from tqdm import tqdm

from .. import paths
from ..degrade import random_degrade
from ..metrics import ranking_accuracy
from ..scenes import sample_batch
from . import common

GATE = 0.90


@dataclass
class AestheticTrainConfig(common.TrainConfig):
    out: Path = field(default_factory=paths.aesthetic_dir)
    """the trained predictor is written here (`vision/` and `head.safetensors`)"""
    work: Path = Path("runs/world/aesthetic")
    """checkpoints live here (resumed automatically)"""
    steps: int = 2500
    batch: int = 64
    """clean renders per step (each also contributes one degraded copy)"""
    head_lr_mult: float = 10.0
    rank_weight: float = 1.0
    min_severity: float = 0.1
    eval_pairs: int = 1000
    """fresh clean renders for the final check; each is paired with one copy per degradation kind"""
    eval_only: bool = False
    """re-measure the ranking accuracy of the weights in `out` and update its record (no training)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.head_lr_mult) and self.head_lr_mult > 0):
            raise ValueError(f"head_lr_mult must be a positive finite number, got {self.head_lr_mult}")
        if not (math.isfinite(self.rank_weight) and self.rank_weight >= 0):
            raise ValueError(f"rank_weight must be a finite number >= 0, got {self.rank_weight}")
        if not 0 < self.min_severity <= 1:
            raise ValueError(f"min_severity must be in (0, 1], got {self.min_severity}")
        if self.eval_pairs < 1:
            raise ValueError(f"eval_pairs must be at least 1, got {self.eval_pairs}")


def vision_config(image_size: int = 32):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(image_size=image_size, patch_size=4, hidden_size=64, intermediate_size=256,
                            num_hidden_layers=3, num_attention_heads=4, num_channels=3, projection_dim=64)


def rate(vision, head, x: torch.Tensor) -> torch.Tensor:
    """Ratings [B] of images in [0,1]: the reward's computation, without its resize (x is 32 px)."""
    return head(F.normalize(vision(pixel_values=common.to_pixel_values(x)).image_embeds, dim=-1)).squeeze(-1)


def loss_fn(vision, head, clean: torch.Tensor, degraded: torch.Tensor, severity: torch.Tensor,
            rank_weight: float) -> torch.Tensor:
    r = rate(vision, head, torch.cat([clean, degraded]))
    rc, rd = r[: clean.shape[0]], r[clean.shape[0]:]
    target = torch.cat([torch.full_like(rc, 8.0), 8.0 - 6.0 * severity])
    return F.mse_loss(r, target) + rank_weight * F.softplus(rd - rc).mean()


def _report(acc: dict[str, float]) -> None:
    print("ranking accuracy (clean over degraded, severity U[0.2,1], fresh renders):")
    for k, v in acc.items():
        print(f"  {k:>12}: {v:.3f}")
    print(f"gate >= {GATE}: {'PASS' if acc['overall'] >= GATE else 'FAIL'}")


def evaluate_saved(cfg: AestheticTrainConfig) -> dict[str, float]:
    """Score the saved reward exactly as users load it and refresh the record's accuracy."""
    import json

    from ...rewards.aesthetic import AestheticReward

    reward = AestheticReward.from_pretrained(cfg.out / "vision", cfg.out / "head.safetensors")
    acc = ranking_accuracy(lambda x: reward(x, [""] * x.shape[0]), cfg.eval_pairs, cfg.image_size)
    _report(acc)
    path = cfg.out / "training_record.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    record.update(ranking_accuracy=acc, gate=GATE, passed=acc["overall"] >= GATE,
                  evaluated=time.strftime("%Y-%m-%d %H:%M:%S"))
    common.atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return acc


def main(cfg: AestheticTrainConfig) -> dict[str, float]:
    from safetensors.torch import save_file
    from transformers import CLIPVisionModelWithProjection

    common.setup(cfg)
    if cfg.eval_only:
        return evaluate_saved(cfg)
    vision = CLIPVisionModelWithProjection(vision_config(cfg.image_size))
    head = torch.nn.Linear(vision.config.projection_dim, 1)
    with torch.no_grad():
        head.bias.fill_(5.0)  # mid-rating: Adam moves a bias by ~lr per step, so 0 -> 5 would take ages
    both = torch.nn.ModuleDict({"vision": vision, "head": head})  # one state dict for checkpoints
    # the head's weights must grow to rating scale (~6 / |embedding difference|): a larger step size
    opt = torch.optim.AdamW([{"params": vision.parameters(), "lr": cfg.lr},
                             {"params": head.parameters(), "lr": cfg.lr * cfg.head_lr_mult}],
                            weight_decay=0.05)
    sched = common.warmup_cosine(opt, 100, cfg.steps)
    start, _ = common.load_checkpoint(cfg.checkpoint, both, opt, sched)
    t0, losses, done = time.time(), [], start
    both.train()
    for step in tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="aesthetic"):
        seed = common.seed_for_step(cfg.seed, step)
        clean = torch.from_numpy(sample_batch(seed, cfg.batch, cfg.image_size)[0])
        bad, _, sev = random_degrade(clean, torch.Generator().manual_seed(seed), cfg.min_severity, 1.0)
        loss = loss_fn(vision, head, clean, bad, sev, cfg.rank_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        done = step + 1
        stop = common.out_of_time(cfg, t0)
        if done % cfg.checkpoint_every == 0 or done == cfg.steps or stop:
            common.save_checkpoint(cfg.checkpoint, both, opt, done, sched)
            tqdm.write(f"step {done} loss {np.mean(losses[-100:]):.4f}")
        if stop:
            break
    both.eval()
    acc = ranking_accuracy(lambda x: rate(vision, head, x), cfg.eval_pairs, cfg.image_size)
    _report(acc)
    vision.save_pretrained(cfg.out / "vision")
    common.image_processor(cfg.image_size).save_pretrained(cfg.out / "vision")
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(cfg.out / "head.safetensors"))
    common.write_record(cfg.out / "training_record.json", cfg, "python -m rewardsds.world.train.aesthetic",
                        steps=cfg.steps, steps_done=done, seconds_this_run=round(time.time() - t0),
                        final_loss=float(np.mean(losses[-100:])) if losses else None,
                        ranking_accuracy=acc, gate=GATE, passed=acc["overall"] >= GATE,
                        parameters=sum(p.numel() for p in both.parameters()))
    return acc


if __name__ == "__main__":
    main(tyro.cli(AestheticTrainConfig))
