"""Differentiable rendering of radiance fields: orbit cameras and emission-absorption compositing.

Pure PyTorch, no heavy imports. Conventions (y up, cameras look along -z) are in `cameras`.
"""

from .cameras import (
    CameraRanges,
    Cameras,
    generate_rays,
    look_at,
    orbit_cameras,
    project,
    sample_camera_sets,
    sample_orbit_cameras,
    turntable_cameras,
    view_label,
    view_prompt,
    view_prompts,
)
from .volume import (
    Composite,
    LambertianShader,
    LearnedBackground,
    RandomBackground,
    RenderOutput,
    SolidBackground,
    StratifiedSampler,
    VolumeRenderer,
    composite,
    ray_box,
)

__all__ = [
    "CameraRanges", "Cameras", "Composite", "LambertianShader", "LearnedBackground", "RandomBackground",
    "RenderOutput", "SolidBackground", "StratifiedSampler", "VolumeRenderer", "composite",
    "generate_rays", "look_at", "orbit_cameras", "project", "ray_box", "sample_camera_sets",
    "sample_orbit_cameras", "turntable_cameras", "view_label", "view_prompt", "view_prompts",
]
