"""The 2D commands end to end: check inputs, load the prior and reward, run the loop, write outputs.

Outputs in the run folder: ``image.png`` (upscaled for viewing when small), ``image_raw.png``,
``video.mp4`` (or .gif), ``log.jsonl`` (one line per step), ``config.json`` (resolved),
``checkpoint.pt`` (for --resume) and ``summary.json``, written last: its presence means complete.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import torch

from . import media
from .config import (
    PRIOR_ALIASES,
    WORLD_FAMILY,
    CommonConfig,
    EditConfig,
    GenerateConfig,
    guidance_config,
    loop_config,
    resolve,
)
from .errors import UserError
from .loop import run
from .losses import build_guidance
from .representations.image import init_image, load_image


def pick_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError as e:
        raise UserError(f"unknown device {spec!r}: {e}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {spec} asked for CUDA, but no CUDA device is available here "
                        "(use --device cpu)")
    return dev


def prepare_out(path: Path, resume: bool) -> Path:
    """Create the run folder and prove it is writable before any expensive work."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to the output folder {str(path)!r}: {e.strerror or e}") from e
    if (path / "summary.json").exists() and not resume:
        (path / "summary.json").unlink()  # the old result no longer describes this folder
    if not resume and (path / "checkpoint.pt").exists():
        (path / "checkpoint.pt").unlink()
        (path / "log.jsonl").unlink(missing_ok=True)
    return path


def load_prior(spec: str, device: torch.device):
    from .priors.diffusers_prior import DiffusersPrior, PriorLoadError

    if spec == "world":
        from .world.paths import prior_dir

        path = str(prior_dir())
    else:
        path = PRIOR_ALIASES.get(spec, spec)
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
    if not Path(path).exists() and offline:
        raise UserError(f"prior {spec!r} is not a local folder and HF_HUB_OFFLINE is set: download it "
                        "first or pass a local path")
    try:
        return DiffusersPrior.from_pretrained(path, device=device)
    except PriorLoadError as e:
        raise UserError(str(e)) from e


def load_reward_model(spec: str, device: torch.device):
    from .rewards.factory import load_reward

    try:
        return load_reward(spec, device=device)
    except (ValueError, ImportError, OSError) as e:
        raise UserError(f"cannot load reward {spec!r}: {e}") from e


def check_prompt(prior, prompt: str, what: str = "prompt") -> None:
    if not prompt or not prompt.strip():
        raise UserError(f"the {what} is empty")
    tok = getattr(prior, "tokenizer", None)
    if tok is not None:
        n = len(tok(prompt).input_ids)
        if n > tok.model_max_length:
            raise UserError(f"the {what} is {n} tokens long; this prior reads at most {tok.model_max_length}")


def _validated(cfg: CommonConfig):
    cfg = resolve(cfg)
    try:
        return cfg, guidance_config(cfg), loop_config(cfg)
    except ValueError as e:
        raise UserError(str(e)) from e


def _finish(cfg, out: Path, prior, result, prompts: list[str], reward, extra: dict) -> dict:
    raw = media.to_uint8(result.images)
    upscale = max(1, 256 // raw.shape[1])
    media.save_png(out / "image_raw.png", media.grid(raw, pad=0))
    media.save_png(out / "image.png", media.grid(media.to_uint8(result.images, upscale)))
    video = None
    if result.frames:
        frames = [media.grid(media.to_uint8(torch.from_numpy(f).permute(0, 3, 1, 2).float() / 255, upscale))
                  for f in result.frames]
        video = media.save_video(out / "video.mp4", frames)
    final_rewards = reward(result.images, prompts).tolist() if reward is not None else None
    summary = {"prompts": prompts, "method": cfg.method, "steps": result.steps_done,
               "skipped_steps": result.skipped_steps, "prior_calls": result.prior_calls,
               "seconds": round(result.seconds, 2), "final_reward": final_rewards,
               "video": video.name if video else None, **extra}
    if getattr(prior, "family", "") == WORLD_FAMILY:
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


def run_generate(cfg: GenerateConfig) -> dict:
    cfg, gcfg, lcfg = _validated(cfg)
    if cfg.batch < 1:
        raise UserError(f"batch must be >= 1, got {cfg.batch}")
    device = pick_device(cfg.device)
    out = prepare_out(cfg.out, cfg.resume)
    generator = torch.Generator().manual_seed(cfg.seed)  # before anything random
    torch.manual_seed(cfg.seed)
    prior = load_prior(cfg.prior, device)
    check_prompt(prior, cfg.prompt)
    if cfg.init == "image" and cfg.init_image is None:
        raise UserError("--init image needs --init-image PATH")
    image = load_image(cfg.init_image, prior.image_size) if cfg.init == "image" else None
    reward = load_reward_model(cfg.reward, device) if gcfg.uses_reward else None
    media.save_json(out / "config.json", {**dataclasses.asdict(cfg), "resolved_prior_path": cfg.prior})
    x0 = init_image(prior, cfg.init, cfg.batch, generator, image=image)
    guidance = build_guidance(gcfg, prior, reward, generator_seed=cfg.seed)
    prompts = [cfg.prompt] * cfg.batch
    t0 = time.time()
    result = run(guidance, prompts, x0, lcfg, generator, out_dir=out, resume=cfg.resume, progress=cfg.progress)
    return _finish(cfg, out, prior, result, prompts, reward, {"wall_seconds": round(time.time() - t0, 2)})


def run_edit(cfg: EditConfig) -> dict:
    cfg, gcfg, lcfg = _validated(cfg)
    device = pick_device(cfg.device)
    out = prepare_out(cfg.out, cfg.resume)
    generator = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    prior = load_prior(cfg.prior, device)
    check_prompt(prior, cfg.source, "source prompt")
    check_prompt(prior, cfg.target, "target prompt")
    image = load_image(cfg.image, prior.image_size)
    reward = load_reward_model(cfg.reward, device) if gcfg.uses_reward else None
    media.save_json(out / "config.json", dataclasses.asdict(cfg))
    source = init_image(prior, "image", 1, generator, image=image)
    guidance = build_guidance(gcfg, prior, reward, source=source, source_prompts=[cfg.source],
                              generator_seed=cfg.seed)
    t0 = time.time()
    result = run(guidance, [cfg.target], source.clone(), lcfg, generator, out_dir=out, resume=cfg.resume,
                 progress=cfg.progress)
    media.save_png(out / "source.png", media.to_uint8(image, max(1, 256 // image.shape[-1]))[0])
    return _finish(cfg, out, prior, result, [cfg.target], reward, {"wall_seconds": round(time.time() - t0, 2)})
