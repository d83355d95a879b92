"""`rewardsds gen3d`'s typed config, its family defaults and its checks (everything checked before
any model loads or any step runs, exports included).

Timesteps follow the official 3D config (MVDream, used by the paper's 3D code): both bounds start at
0.98 and anneal linearly over the first 80% of the run to [0.02, 0.50], then stay there. Latent
(Stable Diffusion) priors use SDS's x0-reconstruction form of that code (`GuidanceConfig.x0_recon`,
std rescale 0.5); the pixel-space world prior keeps the epsilon form.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from .config import CommonConfig, guidance_config, resolve
from .defaults import family_defaults, is_embedded_world, prior_defaults, prior_family
from .loop import LoopConfig
from .losses import GuidanceConfig, TextMethod
from .priors.multiview import MULTIVIEW_FAMILIES
from .render import CameraRanges
from .representations.field import FieldConfig
from .representations.field_scene import RenderConfig, ViewConfig
from .representations.gaussians import GaussianConfig
from .sweep.checks import check_float, check_int
from .world.scenes import BACKGROUND as WORLD_BACKGROUND
from .world3d.paths import WORLD3D_FAMILY, WORLD3D_MV_FAMILY
from .world3d.scenes import camera_caption

WORLD3D_ELEVATION = (0.0, 60.0)
"""elevations (degrees) the 3D world prior was trained on (`world3d.render.ELEVATION_RANGE`, kept equal by a
test; not imported, so the config stays free of the renderer)"""


@dataclass
class Gen3DConfig(CommonConfig):
    """Text-to-3D: distil a radiance field (or 3D Gaussians) of PROMPT (turntable video, view grid, .obj/.glb
    mesh; .ply for Gaussians)."""

    prompt: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="PROMPT")] = tyro.MISSING
    """what the object should be"""
    method: TextMethod = "reward-sds"
    """distillation method (reward-* weight N candidates by their rewards)"""
    out: Path = Path("out/gen3d")
    """run folder: turntable video, views.png, mesh.obj/.glb, field, log.jsonl, checkpoint, summary.json"""
    reward_steps: float = 0.5
    """K: steps that use rewards: a fraction (0, 1] of the first steps, or a count > 1"""
    t_min: float = 0.98
    """lowest timestep at the start of the run, as a fraction of T (anneals to --t-min-anneal-to)"""
    t_max: float = 0.98
    """highest timestep at the start of the run, as a fraction of T (anneals to --t-anneal-to)"""
    t_min_anneal_to: float | None = 0.02
    """lowest timestep at the end of the annealing (fraction of T); None keeps t_min"""
    t_anneal_to: float | None = 0.5
    """highest timestep at the end of the annealing (fraction of T); None keeps t_max"""
    t_anneal_steps: int | None = None
    """steps over which both timestep bounds anneal (default: 80% of the run, as MVDream's 8000 of 10000)"""
    x0_recon: bool | None = None
    """sds/reward-sds: the x0-reconstruction form of the official 3D code (threestudio MVDream
    recon_loss, std rescale 0.5) (default: on for latent/Stable Diffusion priors and SDS methods, off for
    the pixel-space world prior)"""
    views: int | None = None
    """V: views rendered per step (default: 4 for the world prior and multi-view priors (whose views come in
    sets of the prior's V), 1 otherwise)"""
    render_resolutions: tuple[int, ...] | None = None
    """render side per stage (default: (32,) for the world prior, (64,) otherwise)"""
    resolution_milestones: tuple[float, ...] = ()
    """fractions of the run at which the next render resolution starts (one fewer than resolutions)"""
    n_samples: int = 48
    """stratified samples per ray"""
    cameras: CameraRanges = CameraRanges()
    """ranges that training cameras are drawn from (3D world prior: elevations within 0-60, its training
    range; the default -10..45 becomes 0..45)"""
    representation: Literal["field", "gaussians"] | None = None
    """what is optimised: a radiance field (grids + MLP, volume rendered) or 3D Gaussians (splatted)
    (default: the prior's: gaussians for the 3D world priors, field otherwise)"""
    grid: FieldConfig = FieldConfig()
    """the radiance field's feature grids and decoder"""
    gaussians: GaussianConfig = GaussianConfig()
    """--representation gaussians: initialisation, per-attribute learning rates, densification, rasteriser"""
    background: Literal["auto", "learned", "random", "solid"] = "auto"
    """auto: solid world backdrop for the world prior, learned (an MLP of the direction) otherwise"""
    background_color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """colour of --background solid"""
    shading_prob: float = 0.0
    """chance per step of Lambertian shading with normals from the density (else albedo)"""
    view_dependent: bool | None = None
    """append ', front view' etc. (default: off for the 2D world prior, whose vocabulary lacks them, and for
    multi-view priors, which read cameras; on for the 3D world prior, trained on exactly these suffixes, and
    for Stable Diffusion)"""
    reward_view_words: bool | None = None
    """append each view's suffix to the reward's prompts (reward-* methods) (default: as --view-dependent,
    except on the 3D world's multi-view prior: on, since its reward world3d-clip was trained on view-suffixed
    captions while the prior reads cameras instead of words)"""
    reward_camera_frame: bool | None = None
    """the reward reads each view's caption in its camera's frame (`world3d.scenes.camera_caption`: "left of"
    as the image shows it, no view words) instead of view words (default: on when every world3d-clip of
    --reward was trained on such captions, as its training record says; off for any other reward)"""
    opacity_reg: float = 0.0
    """weight of the mean opacity of the views as a penalty (discourages fog)"""
    decoder_lr_scale: float = 0.1
    """learning rate of the field's decoder (and learned background) relative to --lr"""
    video_resolution: int = 128
    """side of the turntable video's frames"""
    video_frames: int = 36
    """frames of the turntable video"""
    mesh_resolution: int = 64
    """marching-cubes lattice side"""
    mesh_level: float | None = None
    """density iso-level of the mesh (default: the mean density of the box)"""

    def prompt_texts(self) -> dict[str, str]:
        # with view-dependent prompts the longest text the prior reads has a view suffix
        return {"prompt": self.prompt + (", overhead view" if self.view_dependent else "")}


def resolve3d(cfg: Gen3DConfig) -> Gen3DConfig:
    """Fill the None fields from the prior family's 3D defaults and check (idempotent; ValueError)."""
    fam, world = family_defaults(cfg.prior), is_embedded_world(cfg.prior)
    d = prior_defaults(cfg.prior, cfg.method)
    if fam.guidance_scale_3d is not None:
        d["cfg"] = fam.guidance_scale_3d[cfg.method.removeprefix("reward-")]
    rep = cfg.representation or fam.representation_3d
    steps = fam.gaussian_steps_3d if rep == "gaussians" and fam.gaussian_steps_3d else fam.steps_3d
    d.update(representation=rep, steps=steps, lr=1e-2, views=fam.views_3d,
             render_resolutions=(fam.render_resolution_3d,), view_dependent=fam.view_dependent_3d)
    if prior_views(cfg.prior) > 1:  # one camera set per step; the cameras, not words, tell the views
        d.update(views=prior_views(cfg.prior), view_dependent=False)
    fill = {k: v for k, v in d.items() if getattr(cfg, k) is None}
    if cfg.reward_view_words is None:  # the family's say, else the prior's (after an explicit --view-dependent)
        fill["reward_view_words"] = (fam.reward_view_words_3d if fam.reward_view_words_3d is not None
                                     else fill.get("view_dependent", cfg.view_dependent))
    if cfg.t_anneal_steps is None:
        fill["t_anneal_steps"] = anneal_steps_default(cfg.steps if cfg.steps is not None else d["steps"])
    if cfg.x0_recon is None:
        fill["x0_recon"] = not world and cfg.method.removeprefix("reward-") == "sds"
    if cfg.background == "auto":
        fill.update(background="solid", background_color=WORLD_BACKGROUND) if world else fill.update(
            background="learned")
    if prior_family(cfg.prior) in (WORLD3D_FAMILY, WORLD3D_MV_FAMILY):
        fill["cameras"] = world3d_cameras(cfg.cameras)
    cfg = resolve(dataclasses.replace(cfg, **fill))
    if cfg.reward_camera_frame is None:
        cfg = dataclasses.replace(cfg, reward_camera_frame=reads_camera_frame(cfg.reward))
    check_gen3d(cfg)
    return cfg


def reads_camera_frame(reward: str | None) -> bool:
    """Whether a reward spec's 3D world CLIPs all read camera-frame captions (`world3d.paths.clip_captions`);
    False when it has none. CLIPs that want different captions cannot share one prompt per view: ValueError."""
    from .rewards.factory import world3d_clip_folders
    from .world3d.paths import clip_captions

    kinds = {clip_captions(f) for f in world3d_clip_folders(reward or "")}
    if len(kinds) > 1:
        raise ValueError(f"--reward {reward!r} mixes 3D world CLIPs trained on camera-frame captions and on "
                         "view words: one prompt per view cannot suit both")
    return kinds == {"camera-frame"}


def prior_views(prior: str) -> int:
    """V of a prior spec without loading it: its family's views per sample (`priors.multiview`), else 1."""
    return MULTIVIEW_FAMILIES.get(prior_family(prior), 1)


def world3d_cameras(cams: CameraRanges) -> CameraRanges:
    """Cameras the 3D world prior can read: it saw elevations 0-60 only, so a view from below the
    ground or above 60 degrees (", overhead view", a suffix it never saw) would be out of distribution.
    The default range is clipped to 0-60 (-10..45 -> 0..45, idempotent); a range given explicitly that
    leaves 0-60 is an error rather than a silent change."""
    lo, hi = cams.elevation
    if (lo, hi) == CameraRanges().elevation:
        return dataclasses.replace(cams, elevation=(max(lo, WORLD3D_ELEVATION[0]), min(hi, WORLD3D_ELEVATION[1])))
    if lo < WORLD3D_ELEVATION[0] or hi > WORLD3D_ELEVATION[1]:
        raise ValueError(f"--cameras.elevation {lo:g} {hi:g} leaves the 3D world prior's training range "
                         f"{WORLD3D_ELEVATION[0]:g}-{WORLD3D_ELEVATION[1]:g} degrees")
    return cams


ANNEAL_FRACTION = 0.8
"""MVDream's timestep annealing lasts 8000 of 10000 steps"""


def anneal_steps_default(steps: int) -> int:
    return max(1, round(ANNEAL_FRACTION * steps))


def check_gen3d(cfg: Gen3DConfig) -> None:
    if cfg.method.endswith("dds"):
        raise ValueError("DDS edits an image; text-to-3D takes sds, vsd or bridge (with or without reward-)")
    check_int("views", cfg.views, 1, 64)
    v = prior_views(cfg.prior)
    if v > 1 and cfg.views % v:
        raise ValueError(f"--views {cfg.views}: the multi-view prior {cfg.prior!r} denoises sets of {v} views; "
                         f"pass a multiple of {v}")
    if v > 1 and cfg.method.removeprefix("reward-") == "vsd":
        raise ValueError(f"{cfg.method} needs a single-view prior; the multi-view prior {cfg.prior!r} takes sds or "
                         "bridge (with or without reward-)")
    check_int("n_samples", cfg.n_samples, 1, 4096)
    check_int("t_anneal_steps", cfg.t_anneal_steps, 0)
    if not cfg.render_resolutions or any(not isinstance(r, int) or not 4 <= r <= 2048 for r in cfg.render_resolutions):
        raise ValueError(f"render resolutions must be whole numbers in [4, 2048] px, got {cfg.render_resolutions}")
    ms = list(cfg.resolution_milestones)
    if len(ms) != len(cfg.render_resolutions) - 1 or ms != sorted(ms) or any(not 0 < m < 1 for m in ms):
        raise ValueError(f"need {len(cfg.render_resolutions) - 1} increasing milestones in (0, 1) for "
                         f"{len(cfg.render_resolutions)} render resolutions; got {tuple(ms)}")
    check_float("shading_prob", cfg.shading_prob, 0.0, 1.0)
    if cfg.representation not in ("field", "gaussians"):
        raise ValueError(f"unknown representation {cfg.representation!r}; expected field or gaussians")
    if cfg.representation == "gaussians":
        if cfg.shading_prob:
            raise ValueError("--shading-prob needs normals from a density: the Gaussians render albedo only (use 0)")
        if cfg.gaussians.backend == "gsplat" and importlib.util.find_spec("gsplat") is None:
            raise ValueError("--gaussians.backend gsplat needs gsplat: pip install 'rewardsds[gsplat]' (CUDA)")
    check_float("opacity_reg", cfg.opacity_reg, 0.0)
    check_float("decoder_lr_scale", cfg.decoder_lr_scale, 0.0, lo_open=True)
    for c in cfg.background_color:
        check_float("background_color", c, 0.0, 1.0)
    cams = cfg.cameras
    for name, (lo, hi), lo_ok, hi_ok in (("elevation", cams.elevation, -90, 90), ("azimuth", cams.azimuth, -360, 360),
                                         ("distance", cams.distance, 0, 1e3), ("fov", cams.fov, 0, 179)):
        check_float(f"cameras.{name}", lo, lo_ok, hi_ok, lo_open=name in ("distance", "fov"))
        check_float(f"cameras.{name}", hi, lo, hi_ok)
    # exports run after training: check them now, so a long run never dies at its end
    check_int("video_resolution", cfg.video_resolution, 8, 2048)
    check_int("video_frames", cfg.video_frames, 1, 3600)
    check_int("mesh_resolution", cfg.mesh_resolution, 8, 512)
    if cfg.mesh_level is not None:
        check_float("mesh_level", cfg.mesh_level, 0.0)
    missing = [m for m in ("trimesh", "skimage") if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"gen3d exports a mesh, which needs {' and '.join(missing)}: pip install 'rewardsds[mesh]'")
    loop_config3d(cfg)  # its own checks (timesteps, K)
    guidance_config3d(cfg)  # x0_recon only with SDS


def loop_config3d(cfg: Gen3DConfig) -> LoopConfig:
    return LoopConfig(steps=cfg.steps, lr=cfg.lr, reward_steps=cfg.reward_steps, t_min=cfg.t_min, t_max=cfg.t_max,
                      t_anneal_to=cfg.t_anneal_to, t_anneal_steps=cfg.t_anneal_steps,
                      t_min_anneal_to=cfg.t_min_anneal_to, checkpoint_every=cfg.checkpoint_every, frame_every=0)


def guidance_config3d(cfg: Gen3DConfig) -> GuidanceConfig:
    """The 2D guidance options plus gen3d's per-prior choice of the SDS form (x0_recon)."""
    return dataclasses.replace(guidance_config(cfg), x0_recon=bool(cfg.x0_recon))


def check3d(cfg: Gen3DConfig):
    """The command's check: resolved config, guidance and loop configs (ValueError)."""
    cfg = resolve3d(cfg)
    return cfg, guidance_config3d(cfg), loop_config3d(cfg)


def render_config(cfg: Gen3DConfig) -> RenderConfig:
    return RenderConfig(background=cfg.background, background_color=tuple(cfg.background_color),
                        n_samples=cfg.n_samples, bound=cfg.grid.bound, shading=bool(cfg.shading_prob),
                        normal_eps=2 * cfg.grid.bound / max(cfg.grid.resolutions))


def view_config(cfg: Gen3DConfig) -> ViewConfig:
    return ViewConfig(views=cfg.views, cameras=cfg.cameras, resolutions=tuple(cfg.render_resolutions),
                      milestones=tuple(cfg.resolution_milestones), shading_prob=cfg.shading_prob,
                      view_dependent=cfg.view_dependent, reward_view_words=cfg.reward_view_words,
                      reward_caption=camera_caption if cfg.reward_camera_frame else None,
                      opacity_reg=cfg.opacity_reg,
                      decoder_lr_scale=cfg.decoder_lr_scale)
