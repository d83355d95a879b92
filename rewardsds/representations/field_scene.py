"""A radiance field seen through random orbit cameras: the 3D `Representation` (DreamFusion).

Each step draws V cameras, renders V views at the scheduled resolution, resizes them to the prior's
image side and encodes them (a VAE for latent priors, the identity for pixel priors):

    x0 = prior.encode(resize(render(field, cameras)))

so the guidance's gradient on x0 flows through the encoder and the renderer into the field. The
views of one step are views of ONE object (`Views.shared`): a candidate is a set of independent
per-view noises (DreamFusion, threestudio, the official 3D code) and its reward is the mean over its
views, so its weight is shared by them. View-dependent prompts append ", front view" etc. For a
multi-view prior of V views the cameras come in sets of V (`ViewConfig.camera_set`: one elevation,
azimuths 360/V apart) and travel with the views (`Views.cameras`) into the prior's conditioning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from ..priors.base import DiffusionPrior
from ..render import (
    CameraRanges,
    Cameras,
    LambertianShader,
    LearnedBackground,
    RandomBackground,
    SolidBackground,
    StratifiedSampler,
    VolumeRenderer,
    sample_camera_sets,
    sample_orbit_cameras,
    view_prompts,
)
from .base import Views
from .field import FieldConfig, RadianceField


@dataclass(frozen=True)
class RenderConfig:
    """What it takes to rebuild the renderer of a field (saved with the field)."""

    background: Literal["learned", "random", "solid"] = "solid"
    background_color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    n_samples: int = 48
    bound: float = 1.0
    shading: bool = False
    normal_eps: float = 2 / 64


def build_renderer(rc: RenderConfig) -> VolumeRenderer:
    match rc.background:
        case "learned":
            bg = LearnedBackground()
        case "random":
            bg = RandomBackground()
        case "solid":
            bg = SolidBackground(tuple(rc.background_color))
        case other:
            raise ValueError(f"unknown background {other!r}; expected learned, random or solid")
    shader = LambertianShader(eps=rc.normal_eps) if rc.shading else None
    return VolumeRenderer(StratifiedSampler(rc.n_samples, rc.bound), bg, shader)


def render_resolution(step: int, steps: int, resolutions: tuple[int, ...], milestones: tuple[float, ...]
                      ) -> int:
    """The render side at `step`: resolutions[k] once step >= milestones[k-1] * steps."""
    k = sum(step >= m * steps for m in milestones)
    return resolutions[k]


def to_prior_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize renders [V,3,h,w] to the prior's image side (anti-aliased when shrinking)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    shrink = images.shape[-1] > size
    return torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                                           antialias=shrink)


@dataclass(frozen=True)
class ViewConfig:
    """How each step looks at the field."""

    views: int = 4
    """V: views rendered per step"""
    cameras: CameraRanges = CameraRanges()
    resolutions: tuple[int, ...] = (32,)
    milestones: tuple[float, ...] = ()
    """fractions of the run at which the next resolution starts"""
    shading_prob: float = 0.0
    view_dependent: bool = False
    """the prior's prompts end with each view's suffix (", side view")"""
    reward_view_words: bool = False
    """the reward's prompts end with each view's suffix, whatever the prior's do (`Views.reward_prompts`)"""
    reward_caption: Callable[[str, float], str] | None = None
    """(prompt, the view camera's azimuth in degrees) -> the reward's prompt for that view, when the reward
    reads each view in its camera's frame (`world3d.scenes.camera_caption`); it wins over `reward_view_words`"""
    opacity_reg: float = 0.0
    decoder_lr_scale: float = 0.1
    camera_set: int = 1
    """views per camera set: 1 = each view its own camera (`sample_orbit_cameras`); V > 1 = sets of V
    views with one elevation, distance and fov and azimuths 360/V apart (`sample_camera_sets`), as a
    multi-view prior of V views was trained (gen3d sets it from the prior's `views_per_sample`)"""

    def __post_init__(self) -> None:
        if self.camera_set < 1 or self.views % self.camera_set:
            raise ValueError(f"views ({self.views}) must be a whole number of camera sets of {self.camera_set} "
                             "(the multi-view prior's views per sample)")


def view_texts(prompt: str, view: ViewConfig, cams: Cameras) -> tuple[list[str], list[str] | None]:
    """(the prior's prompt per view, the reward's where they differ, else None): each with the view's suffix
    as `view.view_dependent` and `view.reward_view_words` say, or the reward's in each camera's frame
    (`view.reward_caption`)."""
    words = view_prompts(prompt, cams) if view.view_dependent or view.reward_view_words else None
    prompts = words if view.view_dependent else [prompt] * view.views
    if view.reward_caption is not None:
        return prompts, [view.reward_caption(prompt, a) for a in cams.azimuth.tolist()]
    return prompts, (words if view.reward_view_words and not view.view_dependent else None)


def draw_cameras(view: ViewConfig, generator: torch.Generator) -> Cameras:
    """This step's `view.views` cameras: independent orbit cameras, or sets of `view.camera_set` views."""
    if view.camera_set > 1:
        return sample_camera_sets(view.views // view.camera_set, view.camera_set, view.cameras, generator)
    return sample_orbit_cameras(view.views, view.cameras, generator)


class FieldScene(torch.nn.Module):
    """`Representation` of a radiance field (+ its renderer's learnable background, if any)."""

    def __init__(self, field: RadianceField, renderer: VolumeRenderer, prior: DiffusionPrior, prompt: str,
                 view: ViewConfig, total_steps: int) -> None:
        super().__init__()
        self.field, self.renderer = field, renderer
        self.prompt, self.view, self.total_steps = prompt, view, total_steps
        self.__dict__["prior"] = prior  # used, not owned: kept out of parameters and state_dict

    def param_groups(self, lr: float) -> list[dict]:
        groups = self.field.param_groups(lr, self.view.decoder_lr_scale)
        if list(self.renderer.parameters()):
            groups.append({"params": list(self.renderer.parameters()), "lr": lr * self.view.decoder_lr_scale})
        return groups

    def views(self, step: int, generator: torch.Generator) -> Views:
        v, prior = self.view, self.prior
        res = render_resolution(step, self.total_steps, v.resolutions, v.milestones)
        cams = draw_cameras(v, generator).to(prior.device)
        shade = bool(v.shading_prob and torch.rand(1, generator=generator).item() < v.shading_prob)
        out = self.renderer(self.field, cams, res, res, generator=generator, shading=shade)
        x0 = prior.encode(to_prior_images(out.image, prior.image_size))
        prompts, reward_prompts = view_texts(self.prompt, v, cams)
        opacity = out.opacity.mean()
        return Views(x0, prompts, shared=True, cameras=cams.c2w, reward_prompts=reward_prompts,
                     extra_loss=v.opacity_reg * opacity if v.opacity_reg else None,
                     log={"resolution": res, "shaded": shade, "opacity": round(float(opacity.detach()), 4),
                          "prompts": sorted(set(prompts))})

    def after_step(self, step: int, optimizer: torch.optim.Optimizer) -> None:
        pass

    def frame(self):
        return None  # the turntable video is made from the finished field

    def state_dict(self, *args, **kwargs) -> dict:
        return {"field": self.field.state_dict(), "renderer": self.renderer.state_dict()}

    def load_state_dict(self, state: dict, strict: bool = True):
        self.field.load_state_dict(state["field"], strict=strict)
        self.renderer.load_state_dict(state["renderer"], strict=strict)


def new_field_scene(grid: FieldConfig, render: RenderConfig, prior: DiffusionPrior, prompt: str,
                    view: ViewConfig, total_steps: int, generator: torch.Generator) -> FieldScene:
    """A fresh field (the centred blob, seeded from `generator`) and its renderer, on the prior's device."""
    field = RadianceField(grid, generator=generator).to(prior.device)
    renderer = build_renderer(render).to(prior.device)
    return FieldScene(field, renderer, prior, prompt, view, total_steps)
