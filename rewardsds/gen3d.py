"""Text-to-3D: (reward-weighted) score distillation into a radiance field (DreamFusion, Poole et al.
2022; RewardSDS section 4.3).

    seed -> field (a centred blob) -> the one loop (`loop.optimize`) on a `FieldScene`, which each
    step renders V orbit views and encodes them for the prior; t ~ U[t_min(step), t_max(step)] with
    both bounds annealed from [0.98, 0.98] to [0.02, 0.50] over 80% of the run (MVDream's config);
    reward steps are the first `reward_steps` of the run; each view has its own noise, and the V views
    share their candidates' weights (rewards averaged over the views per candidate)
    -> turntable video, view grid, mesh, field.

The guidance's surrogate loss has d/dx0 = grad / V; autograd carries it through the encoder (a VAE
for latent priors, the identity map for pixel priors) and the renderer into the field.

Outputs in the run folder: ``turntable.mp4`` (or .gif), ``views.png``, ``mesh.obj``, ``mesh.glb``,
``field.safetensors``, ``log.jsonl`` (one line per step), ``config.json``, ``checkpoint.safetensors``
(for --resume) and ``summary.json``, written last: its presence means complete.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import checkpoints
from .config3d import Gen3DConfig, check3d, loop_config3d, render_config, resolve3d, view_config
from .export3d import export_field
from .loop import optimize
from .render import VolumeRenderer
from .representations.field import RadianceField
from .representations.field_scene import RenderConfig, build_renderer, new_field_scene, render_resolution

__all__ = ["Gen3DConfig", "Gen3DResult", "load_field", "render_resolution", "resolve3d", "run_gen3d",
           "save_outputs", "train"]
FIELD_NAME = "field.safetensors"


@dataclass
class Gen3DResult:
    field: RadianceField
    renderer: VolumeRenderer
    steps_done: int
    skipped_steps: int
    prior_calls: int
    seconds: float


def train(cfg: Gen3DConfig, guidance, generator: torch.Generator, out_dir: Path | None = None,
          resume: bool = False, progress: bool = True, on_step=None, run_id: dict | None = None) -> Gen3DResult:
    """The field of `cfg.prompt` after `cfg.steps` steps of `guidance` (a `rewardsds.losses.Guidance`)."""
    cfg = resolve3d(cfg)
    scene = new_field_scene(cfg.grid, render_config(cfg), guidance.prior, cfg.prompt, view_config(cfg), cfg.steps,
                            generator)
    r = optimize(scene, guidance, loop_config3d(cfg), generator, out_dir, resume, progress, on_step, run_id,
                 desc="text-to-3D")
    return Gen3DResult(scene.field, scene.renderer, r.steps_done, r.skipped_steps, r.prior_calls, r.seconds)


def save_outputs(cfg: Gen3DConfig, result: Gen3DResult, out_dir: Path) -> dict[str, Path]:
    """field.safetensors (field + renderer, loadable with `load_field`), then the turntable, views and mesh."""
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


def run_gen3d(cfg: Gen3DConfig, on_step=None) -> dict:
    """The `rewardsds gen3d` command: the shared preamble, train, export, summary."""
    from . import media
    from .commands.common import prepare
    from .errors import UserError
    from .losses import build_guidance

    s = prepare(cfg, check3d)
    cfg = s.cfg
    guidance = build_guidance(s.guidance, s.prior, s.reward, generator_seed=cfg.seed)
    t0 = time.time()
    try:
        result = train(cfg, guidance, s.generator, out_dir=s.out, resume=cfg.resume, progress=cfg.progress,
                       on_step=on_step, run_id=s.run_id)
    except checkpoints.CheckpointError as e:
        raise UserError(str(e)) from e
    files = save_outputs(cfg, result, s.out)
    summary = {"prompt": cfg.prompt, "method": cfg.method, "steps": result.steps_done,
               "skipped_steps": result.skipped_steps, "prior_calls": result.prior_calls,
               "seconds": round(result.seconds, 2), "wall_seconds": round(time.time() - t0, 2),
               "files": {k: p.name for k, p in files.items()}, "out": str(s.out)}
    media.save_json(s.out / "summary.json", summary)
    return summary
