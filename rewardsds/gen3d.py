"""Text-to-3D: (reward-weighted) score distillation into a radiance field (DreamFusion, Poole et al.
2022; RewardSDS section 4.3) or a set of 3D Gaussians (`--representation gaussians`; DreamGaussian).

    seed -> field (a centred blob) or Gaussians (a ball of 5000) -> the one loop (`loop.optimize`) on a
    `FieldScene` / `GaussianScene`, which each step renders V orbit views and encodes them for the prior;
    t ~ U[t_min(step), t_max(step)] with both bounds annealed from [0.98, 0.98] to [0.02, 0.50] over
    80% of the run (MVDream's config);
    reward steps are the first `reward_steps` of the run; each view has its own noise, and the V views
    share their candidates' weights (rewards averaged over the views per candidate)
    -> turntable video, view grid, mesh, field (or Gaussians + .ply).

A multi-view prior (`--prior world3d-mv`, or any folder of a `priors.multiview` family) denoises the V views
of one camera set together: each step renders sets of V views (azimuths a, a+90, a+180, a+270 for V = 4,
one elevation, as MVDream trains) whose cameras go with them into the prior's conditioning.

The guidance's surrogate loss has d/dx0 = grad / V; autograd carries it through the encoder (a VAE
for latent priors, the identity map for pixel priors) and the renderer into the field.

Outputs in the run folder: ``turntable.mp4`` (or .gif), ``views.png``, ``mesh.obj``, ``mesh.glb``,
``field.safetensors`` (Gaussians: ``gaussians.safetensors`` and a 3DGS ``gaussians.ply``), ``log.jsonl`` (one
line per step; Gaussians also log their count), ``config.json``, ``checkpoint.safetensors``
(for --resume) and ``summary.json``, written last: its presence means complete. On the 3D world prior
the summary holds ``judge3d``, the exact judge's verdict on the finished field (`world3d.model_judge`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import checkpoints
from .config3d import Gen3DConfig, check3d, loop_config3d, render_config, resolve3d, view_config
from .export3d import export_field, export_gaussians
from .loop import optimize
from .render import VolumeRenderer
from .render.splat import SplatRenderer
from .representations.field import RadianceField
from .representations.field_scene import RenderConfig, build_renderer, new_field_scene, render_resolution
from .representations.gaussians import GaussianConfig, GaussianModel, new_gaussian_scene
from .world3d.paths import WORLD3D_FAMILY, WORLD3D_MV_FAMILY

__all__ = ["Gen3DConfig", "Gen3DResult", "load_field", "load_gaussians", "load_scene", "render_resolution",
           "resolve3d", "run_gen3d", "save_outputs", "train"]
FIELD_NAME = "field.safetensors"
GAUSSIANS_NAME = "gaussians.safetensors"


@dataclass
class Gen3DResult:
    field: RadianceField | GaussianModel
    """the radiance field, or the Gaussian set with --representation gaussians"""
    renderer: VolumeRenderer | SplatRenderer
    steps_done: int
    skipped_steps: int
    prior_calls: int
    seconds: float


def train(cfg: Gen3DConfig, guidance, generator: torch.Generator, out_dir: Path | None = None,
          resume: bool = False, progress: bool = True, on_step=None, run_id: dict | None = None) -> Gen3DResult:
    """The field (or Gaussians) of `cfg.prompt` after `cfg.steps` steps of `guidance` (a
    `rewardsds.losses.Guidance`)."""
    cfg = resolve3d(cfg)
    build = new_gaussian_scene if cfg.representation == "gaussians" else new_field_scene
    # a multi-view prior of V views sees each step's views as sets of V around one elevation (as it was trained)
    view = dataclasses.replace(view_config(cfg), camera_set=guidance.prior.views_per_sample)
    scene = build(cfg.gaussians if cfg.representation == "gaussians" else cfg.grid, render_config(cfg),
                  guidance.prior, cfg.prompt, view, cfg.steps, generator)
    r = optimize(scene, guidance, loop_config3d(cfg), generator, out_dir, resume, progress, on_step, run_id,
                 desc="text-to-3D")
    model = scene.model if cfg.representation == "gaussians" else scene.field
    return Gen3DResult(model, scene.renderer, r.steps_done, r.skipped_steps, r.prior_calls, r.seconds)


def save_outputs(cfg: Gen3DConfig, result: Gen3DResult, out_dir: Path) -> dict[str, Path]:
    """field.safetensors (field + renderer, loadable with `load_field`), then the turntable, views and mesh;
    for Gaussians gaussians.safetensors (`load_gaussians`) and gaussians.ply instead of the field."""
    if isinstance(result.field, GaussianModel):
        state = {"gaussians": result.field.state_dict(), "renderer": result.renderer.state_dict()}
        meta = {"gaussian_config": dataclasses.asdict(result.field.config),
                "render": dataclasses.asdict(render_config(cfg)), "prompt": cfg.prompt}
        checkpoints.save_state(out_dir / GAUSSIANS_NAME, state, meta)
        files = export_gaussians(result.field, result.renderer, out_dir, resolution=cfg.video_resolution,
                                 n_frames=cfg.video_frames, mesh_resolution=cfg.mesh_resolution, level=cfg.mesh_level)
        return {"gaussians": out_dir / GAUSSIANS_NAME, **files}
    state = {"field": result.field.state_dict(), "renderer": result.renderer.state_dict()}
    meta = {"field_config": dataclasses.asdict(result.field.config), "render": dataclasses.asdict(render_config(cfg)),
            "prompt": cfg.prompt}
    checkpoints.save_state(out_dir / FIELD_NAME, state, meta)
    files = export_field(result.field, result.renderer, out_dir, resolution=cfg.video_resolution,
                         n_frames=cfg.video_frames, mesh_resolution=cfg.mesh_resolution, level=cfg.mesh_level)
    return {"field": out_dir / FIELD_NAME, **files}


def load_field(path: str | Path) -> tuple[RadianceField, VolumeRenderer]:
    """The field and renderer of a finished run's field.safetensors (never unpickles anything)."""
    state, meta = checkpoints.load_state(path)
    try:
        rc = meta["render"]
        renderer = build_renderer(RenderConfig(**{**rc, "background_color": tuple(rc["background_color"])}))
        renderer.load_state_dict(state["renderer"])
        field = RadianceField.from_checkpoint({"config": meta["field_config"], "state": state["field"]})
    except (KeyError, TypeError, RuntimeError) as e:
        raise checkpoints.CheckpointError(f"{str(path)!r} is not a field saved by gen3d: {e}") from e
    return field, renderer


def load_gaussians(path: str | Path) -> tuple[GaussianModel, SplatRenderer]:
    """The Gaussian set and its renderer of a finished run's gaussians.safetensors (never unpickles anything)."""
    state, meta = checkpoints.load_state(path)
    try:
        rc = meta["render"]
        rc = RenderConfig(**{**rc, "background_color": tuple(rc["background_color"])})
        renderer = SplatRenderer(build_renderer(rc).background, GaussianConfig(**meta["gaussian_config"]).backend)
        renderer.load_state_dict(state["renderer"])
        model = GaussianModel.from_checkpoint({"config": meta["gaussian_config"], "state": state["gaussians"]})
    except (KeyError, TypeError, RuntimeError) as e:
        raise checkpoints.CheckpointError(f"{str(path)!r} is not a Gaussian set saved by gen3d: {e}") from e
    return model, renderer


def load_scene(path: str | Path) -> tuple[RadianceField | GaussianModel, VolumeRenderer | SplatRenderer]:
    """The model and renderer of a finished run, a field or Gaussians: `path` is the run folder or its
    field.safetensors / gaussians.safetensors. Either pair renders with `export3d.render_views`."""
    path = Path(path)
    if path.is_dir():
        path = path / (GAUSSIANS_NAME if (path / GAUSSIANS_NAME).exists() else FIELD_NAME)
    return load_gaussians(path) if path.name == GAUSSIANS_NAME else load_field(path)


def run_id3d(cfg: Gen3DConfig, run_id: dict) -> dict:
    """A field run is identified as before the Gaussians existed (its old checkpoints still resume); a
    Gaussian run by everything but the field's grid and ray samples."""
    drop = ("representation", "gaussians") if cfg.representation == "field" else ("grid", "n_samples")
    return {k: v for k, v in run_id.items() if k not in drop}


def run_gen3d(cfg: Gen3DConfig, on_step=None, models=None) -> dict:
    """The `rewardsds gen3d` command: the shared preamble, train, export, summary."""
    from . import media
    from .commands.common import prepare
    from .errors import UserError
    from .losses import build_guidance

    s = prepare(cfg, check3d, models, multiview=True)
    cfg = s.cfg
    guidance = build_guidance(s.guidance, s.prior, s.reward, **s.guidance_kwargs())
    t0 = time.time()
    try:
        result = train(cfg, guidance, s.generator, out_dir=s.out, resume=cfg.resume, progress=cfg.progress,
                       on_step=on_step, run_id=run_id3d(cfg, s.run_id))
    except checkpoints.CheckpointError as e:
        raise UserError(str(e)) from e
    files = save_outputs(cfg, result, s.out)
    summary = {"prompt": cfg.prompt, "method": cfg.method, "steps": result.steps_done,
               "skipped_steps": result.skipped_steps, "prior_calls": result.prior_calls,
               "seconds": round(result.seconds, 2), "wall_seconds": round(time.time() - t0, 2),
               "files": {k: p.name for k, p in files.items()}, "out": str(s.out)}
    if getattr(s.prior, "family", "") in (WORLD3D_FAMILY, WORLD3D_MV_FAMILY):  # an exact reading: 3D world only
        from .world3d.model_judge import verdict_summary

        summary["judge3d"] = verdict_summary(result.field, cfg.prompt)
    media.save_json(s.out / "summary.json", summary)
    return summary
