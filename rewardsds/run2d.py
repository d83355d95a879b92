"""The 2D commands end to end: the shared preamble, the one loop on an image, the outputs.

Outputs in the run folder: ``image.png`` (upscaled for viewing when small), ``image_raw.png``,
``video.mp4`` (or .gif), ``log.jsonl`` (one line per step), ``config.json`` (resolved),
``checkpoint.safetensors`` (for --resume) and ``summary.json``, written last: its presence means complete.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from . import media
from .commands.common import Session, prepare
from .config import EditConfig, GenerateConfig, guidance_config, loop_config, resolve
from .errors import UserError
from .loop import run
from .losses import build_guidance
from .representations.image import init_image, load_image
from .sampling import best_of_samples
from .world.paths import WORLD_FAMILY


def check_generate(cfg: GenerateConfig):
    """Resolved config, guidance and loop configs of `generate` (ValueError on any bad option)."""
    cfg = resolve(cfg)
    if cfg.method.endswith("dds"):
        raise ValueError(f"method {cfg.method!r} edits an image: use `rewardsds edit IMAGE --source ... --target ...`")
    if cfg.init == "image" and cfg.init_image is None:
        raise ValueError("--init image needs --init-image PATH")
    if cfg.init_image is not None and not Path(cfg.init_image).exists():
        raise ValueError(f"--init-image {str(cfg.init_image)!r} does not exist")
    return cfg, guidance_config(cfg), loop_config(cfg)


def check_edit(cfg: EditConfig):
    cfg = resolve(cfg)
    if not Path(cfg.image).exists():  # before any model loads
        raise ValueError(f"image {str(cfg.image)!r} does not exist")
    return cfg, guidance_config(cfg), loop_config(cfg)


def _finish(s: Session, result, prompts: list[str], extra: dict) -> dict:
    raw = media.to_uint8(result.images)
    upscale = max(1, 256 // raw.shape[1])
    out = s.out
    media.save_png(out / "image_raw.png", media.grid(raw, pad=0))
    media.save_png(out / "image.png", media.grid(media.to_uint8(result.images, upscale)))
    video = None
    if result.frames:
        frames = [media.grid(media.to_uint8(torch.from_numpy(f).permute(0, 3, 1, 2).float() / 255, upscale))
                  for f in result.frames]
        video = media.save_video(out / "video.mp4", frames)
    final_rewards = s.reward(result.images, prompts).tolist() if s.reward is not None else None
    summary = {"prompts": prompts, "method": s.cfg.method, "steps": result.steps_done,
               "skipped_steps": result.skipped_steps, "prior_calls": result.prior_calls,
               "seconds": round(result.seconds, 2), "final_reward": final_rewards,
               "video": video.name if video else None, "out": str(out),
               "files": {"image": "image.png", "raw": "image_raw.png"}, **extra}
    if getattr(s.prior, "family", "") == WORLD_FAMILY:
        summary["judge"] = _judge(result.images, prompts)
    media.save_json(out / "summary.json", summary)
    return summary


def _judge(images: torch.Tensor, prompts: list[str]) -> list[dict] | None:
    from .world.judge import judge

    out = []
    for img, p in zip(images, prompts):
        try:
            v = judge(img.numpy(), p)
        except ValueError:
            return None  # not a world prompt: nothing to judge
        out.append({"accuracy": v.accuracy, "facts": v.facts})
    return out


def _run(s: Session, prompts: list[str], x0: torch.Tensor, guidance, on_step=None):
    from .checkpoints import CheckpointError

    t0 = time.time()
    try:
        result = run(guidance, prompts, x0, s.loop, s.generator, out_dir=s.out, resume=s.cfg.resume,
                     progress=s.cfg.progress, on_step=on_step, run_id=s.run_id)
    except CheckpointError as e:
        raise UserError(str(e)) from e
    return result, round(time.time() - t0, 2)


def run_generate(cfg: GenerateConfig, on_step=None, models=None) -> dict:
    s = prepare(cfg, check_generate, models)
    cfg = s.cfg
    prompts = [cfg.prompt] * cfg.batch
    extra = {}
    if cfg.init_samples:
        t0 = time.time()
        image, scores = best_of_samples(s.prior, prompts, cfg.init_samples, s.reward, cfg.init_sample_steps,
                                        cfg.init_sample_cfg, s.generator, cfg.negative_prompt)
        x0 = init_image(s.prior, "image", cfg.batch, s.generator, image=image)
        media.save_png(s.out / "init.png", media.grid(media.to_uint8(image, max(1, 256 // image.shape[-1]))))
        media.save_png(s.out / "init_raw.png", media.grid(media.to_uint8(image), pad=0))
        extra["init_samples"] = {"n": cfg.init_samples, "picked_by": "reward" if scores is not None else "first",
                                 "rewards": None if scores is None else scores.tolist(),
                                 "seconds": round(time.time() - t0, 2)}  # not in "seconds" (the loop's)
        if getattr(s.prior, "family", "") == WORLD_FAMILY:  # what the start alone gets, beside the final
            extra["init_samples"]["judge"] = _judge(image, prompts)
    else:
        image = load_image(cfg.init_image, s.prior.image_size) if cfg.init == "image" else None
        x0 = init_image(s.prior, cfg.init, cfg.batch, s.generator, image=image)
    guidance = build_guidance(s.guidance, s.prior, s.reward, **s.guidance_kwargs())
    result, wall = _run(s, prompts, x0, guidance, on_step)
    return _finish(s, result, prompts, {"wall_seconds": wall, **extra})


def run_edit(cfg: EditConfig, on_step=None, models=None) -> dict:
    s = prepare(cfg, check_edit, models)
    cfg = s.cfg
    image = load_image(cfg.image, s.prior.image_size)
    source = init_image(s.prior, "image", 1, s.generator, image=image)
    guidance = build_guidance(s.guidance, s.prior, s.reward, source=source, source_prompts=[cfg.source],
                              **s.guidance_kwargs())
    result, wall = _run(s, [cfg.target], source.clone(), guidance, on_step)
    media.save_png(s.out / "source.png", media.to_uint8(image, max(1, 256 // image.shape[-1]))[0])
    return _finish(s, result, [cfg.target], {"wall_seconds": wall})
