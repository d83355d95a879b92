"""Text-to-3D: (reward-weighted) score distillation into a radiance field (DreamFusion, Poole et al.
2022; RewardSDS section 4.3).

    seed -> field (a centred blob) -> for each step:
        V orbit cameras ~ ranges; render V views at the scheduled resolution; resize to the prior's
        image size; x0 = prior.encode(views); t ~ U[t_min, t_max(step)] with t_max annealed
        0.98 -> 0.5; reward step? (the first `reward_steps` of the run); guidance on the V views with
        view-dependent prompts ("..., front view"), the SAME t for all views and candidate weights
        shared across views (rewards averaged over the views per candidate); Adam on the field
    -> checkpoint every `checkpoint_every` steps -> turntable video, view grid, mesh, field.

The guidance's surrogate loss has d/dx0 = grad / V; autograd carries it through the encoder (a VAE
for latent priors, the identity map for pixel priors) and the renderer into the field.

Outputs in the run folder: ``turntable.mp4`` (or .gif), ``views.png``, ``mesh.obj``, ``mesh.glb``,
``field.pt``, ``log.jsonl`` (one line per step), ``config.json``, ``checkpoint.pt`` (for --resume) and
``summary.json``, written last: its presence means complete.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import tyro
from tqdm import tqdm

from .config import CommonConfig, is_world_prior, prior_defaults
from .export3d import atomic_torch_save, export_field
from .loop import truncate_log
from .render import (
    CameraRanges,
    LambertianShader,
    LearnedBackground,
    RandomBackground,
    SolidBackground,
    StratifiedSampler,
    VolumeRenderer,
    sample_orbit_cameras,
    view_prompts,
)
from .representations.field import FieldConfig, RadianceField
from .schedules import TimestepSchedule, reward_active

WORLD_BACKGROUND = (0.94, 0.94, 0.92)  # the world scenes' backdrop (world.scenes.BACKGROUND)


@dataclass
class Gen3DConfig(CommonConfig):
    """Text-to-3D: distil a radiance field of PROMPT (turntable video, view grid, .obj/.glb mesh)."""

    prompt: tyro.conf.Positional[str] = ""
    out: Path = Path("out/gen3d")
    reward_steps: float = 0.5
    """K: steps that use rewards: a fraction (0, 1] of the first steps, or a count > 1"""
    t_anneal_to: float | None = 0.5
    """upper timestep bound at the end of the annealing (fraction of T); None keeps t_max"""
    t_anneal_steps: int | None = None
    """steps over which t_max anneals (default: the whole run)"""
    views: int | None = None
    """V: views rendered per step (default: 4 for the world prior, 1 otherwise)"""
    render_resolutions: tuple[int, ...] | None = None
    """render side per stage (default: (32,) for the world prior, (64,) otherwise)"""
    resolution_milestones: tuple[float, ...] = ()
    """fractions of the run at which the next render resolution starts (one fewer than resolutions)"""
    n_samples: int = 48
    """stratified samples per ray"""
    cameras: CameraRanges = CameraRanges()
    grid: FieldConfig = FieldConfig()
    background: Literal["auto", "learned", "random", "solid"] = "auto"
    """auto: solid world backdrop for the world prior, learned (an MLP of the direction) otherwise"""
    background_color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    shading_prob: float = 0.0
    """chance per step of Lambertian shading with normals from the density (else albedo)"""
    view_dependent: bool | None = None
    """append ', front view' etc. (default: off for the world prior, whose vocabulary lacks them)"""
    opacity_reg: float = 0.0
    """weight of the mean opacity of the views as a penalty (discourages fog)"""
    decoder_lr_scale: float = 0.1
    video_resolution: int = 128
    video_frames: int = 36
    mesh_resolution: int = 64
    mesh_level: float | None = None
    """density iso-level of the mesh (default: the mean density of the box)"""


def resolve3d(cfg: Gen3DConfig) -> Gen3DConfig:
    """Fill the None fields from the prior family's 3D defaults (idempotent)."""
    world = is_world_prior(cfg.prior)
    d = prior_defaults(cfg.prior, cfg.method)
    d.update(steps=400 if world else 5000, lr=1e-2)
    d.update(views=4 if world else 1, render_resolutions=(32,) if world else (64,), view_dependent=not world)
    fill = {k: v for k, v in d.items() if getattr(cfg, k) is None}
    if cfg.t_anneal_steps is None:
        fill["t_anneal_steps"] = cfg.steps if cfg.steps is not None else d["steps"]
    if cfg.background == "auto" and world:
        fill.update(background="solid", background_color=WORLD_BACKGROUND)
    elif cfg.background == "auto":
        fill.update(background="learned")
    cfg = dataclasses.replace(cfg, **fill)
    _validate(cfg)
    return cfg


def _validate(cfg: Gen3DConfig) -> None:
    if cfg.method.removeprefix("reward-") == "dds":
        raise ValueError("DDS edits an image; text-to-3D takes sds, vsd or bridge (with or without reward-)")
    if cfg.steps < 1 or cfg.views < 1 or cfg.n_samples < 1:
        raise ValueError("steps, views and n_samples must be >= 1")
    if not cfg.render_resolutions or min(cfg.render_resolutions) < 4:
        raise ValueError(f"render resolutions must be >= 4 px, got {cfg.render_resolutions}")
    ms = list(cfg.resolution_milestones)
    if len(ms) != len(cfg.render_resolutions) - 1 or ms != sorted(ms) or any(not 0 < m < 1 for m in ms):
        raise ValueError(f"need {len(cfg.render_resolutions) - 1} increasing milestones in (0, 1) for "
                         f"{len(cfg.render_resolutions)} render resolutions; got {tuple(ms)}")
    if not 0 <= cfg.shading_prob <= 1:
        raise ValueError(f"shading_prob must be in [0, 1], got {cfg.shading_prob}")
    if cfg.reward_steps < 0 or (cfg.reward_steps > 1 and cfg.reward_steps > cfg.steps):
        raise ValueError(f"reward_steps (K) must be a fraction in [0, 1] or a count <= steps ({cfg.steps}); "
                         f"got {cfg.reward_steps}")
    _timesteps(cfg)  # its own checks (0 <= t_min < anneal_to <= t_max <= 1)


def _timesteps(cfg: Gen3DConfig, num_train_timesteps: int = 1000) -> TimestepSchedule:
    return TimestepSchedule(cfg.t_min, cfg.t_max, cfg.t_anneal_to, cfg.t_anneal_steps, num_train_timesteps)


def render_resolution(step: int, steps: int, resolutions: tuple[int, ...], milestones: tuple[float, ...]
                      ) -> int:
    """The render side at `step`: resolutions[k] once step >= milestones[k-1] * steps."""
    k = sum(step >= m * steps for m in milestones)
    return resolutions[k]


def render_spec(cfg: Gen3DConfig) -> dict:
    """What it takes to rebuild the renderer (saved with the field)."""
    return {"background": cfg.background, "background_color": tuple(cfg.background_color),
            "n_samples": cfg.n_samples, "bound": cfg.grid.bound, "shading": bool(cfg.shading_prob),
            "normal_eps": 2 * cfg.grid.bound / max(cfg.grid.resolutions)}


def build_renderer(spec: dict) -> VolumeRenderer:
    bg = {"learned": LearnedBackground, "random": RandomBackground,
          "solid": lambda: SolidBackground(tuple(spec["background_color"]))}[spec["background"]]()
    shader = LambertianShader(eps=spec["normal_eps"]) if spec["shading"] else None
    return VolumeRenderer(StratifiedSampler(spec["n_samples"], spec["bound"]), bg, shader)


def to_prior_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize renders [V,3,h,w] to the prior's image side (anti-aliased when shrinking)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    shrink = images.shape[-1] > size
    return torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                                           antialias=shrink)


@dataclass
class Gen3DResult:
    field: RadianceField
    renderer: VolumeRenderer
    steps_done: int
    skipped_steps: int
    prior_calls: int
    seconds: float


def train(cfg: Gen3DConfig, guidance, generator: torch.Generator, out_dir: Path | None = None,
          resume: bool = False, progress: bool = True) -> Gen3DResult:
    """The optimisation loop (module docstring). `guidance` follows `rewardsds.losses.Guidance`."""
    cfg = resolve3d(cfg)
    prior = guidance.prior
    device = prior.device
    field = RadianceField(cfg.grid, generator=generator).to(device)
    renderer = build_renderer(render_spec(cfg)).to(device)
    groups = field.param_groups(cfg.lr, cfg.decoder_lr_scale)
    if list(renderer.parameters()):
        groups.append({"params": list(renderer.parameters()), "lr": cfg.lr * cfg.decoder_lr_scale})
    opt = torch.optim.Adam(groups, weight_decay=0.0)
    schedule = _timesteps(cfg, prior.num_train_timesteps)
    start, skipped, calls, seconds = 0, 0, 0, 0.0
    ckpt = out_dir / "checkpoint.pt" if out_dir is not None else None
    log_path = out_dir / "log.jsonl" if out_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    if resume and ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        field.load_state_dict(state["field"]["state"])
        renderer.load_state_dict(state["renderer"])
        opt.load_state_dict(state["opt"])
        generator.set_state(state["generator"])
        start, skipped = state["step"], state["skipped"]
        calls, seconds = state["prior_calls"], state["seconds"]
        if getattr(guidance, "particle", None) is not None and state.get("particle") is not None:
            guidance.particle.load_state_dict(state["particle"])
        truncate_log(log_path, start)

    def checkpoint(step: int) -> None:
        particle = getattr(guidance, "particle", None)
        atomic_torch_save({"field": field.to_checkpoint(), "renderer": renderer.state_dict(),
                           "opt": opt.state_dict(), "generator": generator.get_state(), "step": step,
                           "skipped": skipped, "prior_calls": calls, "seconds": seconds,
                           "particle": particle.state_dict() if particle is not None else None}, ckpt)

    log = open(log_path, "a") if log_path is not None else None  # noqa: SIM115 (closed in finally)
    try:
        bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress,
                   desc="text-to-3D", unit="step")
        for step in bar:
            t0 = time.perf_counter()
            res = render_resolution(step, cfg.steps, cfg.render_resolutions, cfg.resolution_milestones)
            cams = sample_orbit_cameras(cfg.views, cfg.cameras, generator).to(device)
            shade = bool(cfg.shading_prob and torch.rand(1, generator=generator).item() < cfg.shading_prob)
            out = renderer(field, cams, res, res, generator=generator, shading=shade)
            x0 = prior.encode(to_prior_images(out.image, prior.image_size))
            prompts = view_prompts(cfg.prompt, cams) if cfg.view_dependent else [cfg.prompt] * cfg.views
            t = schedule.sample(step, generator)
            use_reward = reward_active(step, cfg.steps, cfg.reward_steps)
            g = guidance(x0, prompts, t, use_reward, generator, share_weights=True, step=step,
                         total_steps=cfg.steps)
            calls += g.prior_calls
            loss = g.loss + cfg.opacity_reg * out.opacity.mean() if cfg.opacity_reg else g.loss
            if g.finite:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            else:
                skipped += 1
            dt = time.perf_counter() - t0
            seconds += dt
            rec = {"step": step, "t": t, "resolution": res, "reward_step": g.rewards is not None,
                   "shaded": shade,
                   "grad_norm": float(g.grad.norm()), "skipped": not g.finite, "prior_calls": g.prior_calls,
                   "opacity": round(float(out.opacity.detach().mean()), 4), "seconds": round(dt, 4),
                   "prompts": sorted(set(prompts)),
                   "rewards": g.rewards.tolist() if g.rewards is not None else None,
                   "weights": g.weights[0].tolist() if g.weights is not None else None}
            if log is not None:
                log.write(json.dumps(rec) + "\n")
                log.flush()
            bar.set_postfix(t=t, res=res, **({"reward": f"{g.rewards.mean():.3f}"} if g.rewards is not None
                                             else {}))
            if ckpt is not None and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps):
                checkpoint(step + 1)
    finally:
        if log is not None:
            log.close()
    return Gen3DResult(field, renderer, cfg.steps, skipped, calls, seconds)


def save_outputs(cfg: Gen3DConfig, result: Gen3DResult, out_dir: Path) -> dict[str, Path]:
    """field.pt (field + renderer, loadable with `load_field`), then the turntable, views and mesh."""
    atomic_torch_save({"field": result.field.to_checkpoint(), "renderer": result.renderer.state_dict(),
                       "render": render_spec(cfg), "prompt": cfg.prompt, "config": dataclasses.asdict(cfg)},
                      out_dir / "field.pt")
    files = export_field(result.field, result.renderer, out_dir, resolution=cfg.video_resolution,
                         n_frames=cfg.video_frames, mesh_resolution=cfg.mesh_resolution, level=cfg.mesh_level)
    return {"field": out_dir / "field.pt", **files}


def load_field(path: str | Path) -> tuple[RadianceField, VolumeRenderer]:
    """The field and renderer of a finished run's field.pt."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    renderer = build_renderer(state["render"])
    renderer.load_state_dict(state["renderer"])
    return RadianceField.from_checkpoint(state["field"]), renderer


def run_gen3d(cfg: Gen3DConfig) -> dict:
    """The `rewardsds gen3d` command: check inputs, load the prior and reward, train, export."""
    from . import media
    from .config import guidance_config
    from .errors import UserError
    from .losses import build_guidance
    from .run2d import check_prompt, load_prior, load_reward_model, pick_device, prepare_out

    try:
        cfg = resolve3d(cfg)
        gcfg = guidance_config(cfg)
    except ValueError as e:
        raise UserError(str(e)) from e
    device = pick_device(cfg.device)
    out = prepare_out(cfg.out, cfg.resume)
    generator = torch.Generator().manual_seed(cfg.seed)  # before anything random
    torch.manual_seed(cfg.seed)
    prior = load_prior(cfg.prior, device)
    check_prompt(prior, cfg.prompt + (", overhead view" if cfg.view_dependent else ""))
    reward = load_reward_model(cfg.reward, device) if gcfg.uses_reward else None
    media.save_json(out / "config.json", dataclasses.asdict(cfg))
    guidance = build_guidance(gcfg, prior, reward, generator_seed=cfg.seed)
    t0 = time.time()
    result = train(cfg, guidance, generator, out_dir=out, resume=cfg.resume, progress=cfg.progress)
    files = save_outputs(cfg, result, out)
    summary = {"prompt": cfg.prompt, "method": cfg.method, "steps": result.steps_done,
               "skipped_steps": result.skipped_steps, "prior_calls": result.prior_calls,
               "seconds": round(result.seconds, 2), "wall_seconds": round(time.time() - t0, 2),
               "files": {k: p.name for k, p in files.items()}, "out": str(out)}
    media.save_json(out / "summary.json", summary)
    return summary
