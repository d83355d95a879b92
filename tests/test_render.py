"""Cameras and volume rendering against analytic scenes (constant-density box and sphere)."""

import math

import pytest
import torch

from rewardsds.render import (
    CameraRanges,
    LambertianShader,
    LearnedBackground,
    SolidBackground,
    StratifiedSampler,
    VolumeRenderer,
    composite,
    generate_rays,
    look_at,
    orbit_cameras,
    project,
    ray_box,
    sample_orbit_cameras,
    view_label,
    view_prompt,
    view_prompts,
)


class Sphere:
    """Constant density `sigma` and colour inside radius `r` around the origin."""

    def __init__(self, sigma=2.0, r=0.6, color=(1.0, 0.0, 0.0)):
        self.sigma, self.r, self.color = sigma, r, torch.tensor(color)

    def __call__(self, p):
        inside = (p.norm(dim=-1) < self.r).float()
        return self.sigma * inside, self.color.expand(p.shape[0], 3) * torch.ones_like(p)


def chord(origins, dirs, r):
    """Exact length of each ray inside the sphere of radius r (0 when it misses)."""
    od = (origins * dirs).sum(-1)
    b2 = (origins * origins).sum(-1) - od**2
    return 2 * (r * r - b2).clamp_min(0).sqrt()


# --- cameras ----------------------------------------------------------------------------------------

def test_point_ahead_projects_to_centre_and_axes_are_right():
    cams = orbit_cameras([0.0, 30.0, -10.0], [0.0, 120.0, -75.0], [3.0, 2.5, 4.0], 50.0)
    h = w = 32
    uvd = project(torch.zeros(3, 1, 3), cams, h, w)  # the origin is straight ahead of each camera
    assert torch.allclose(uvd[:, 0, :2], torch.tensor([w / 2, h / 2]).expand(3, 2), atol=1e-4)
    assert torch.allclose(uvd[:, 0, 2], cams.distance, atol=1e-4)
    # front camera (azimuth 0, on +z): world +x is image right, world +y is image top
    front = orbit_cameras(0.0, 0.0, 3.0, 50.0)
    uv = project(torch.tensor([[[0.3, 0.0, 0.0], [0.0, 0.3, 0.0]]]), front, h, w)[0]
    assert uv[0, 0] > w / 2 and abs(uv[0, 1] - h / 2) < 1e-4
    assert uv[1, 1] < h / 2 and abs(uv[1, 0] - w / 2) < 1e-4
    assert torch.allclose(front.eye[0], torch.tensor([0.0, 0.0, 3.0]), atol=1e-6)


def test_rays_and_projection_are_inverse():
    cams = sample_orbit_cameras(3, generator=torch.Generator().manual_seed(1))
    origins, dirs = generate_rays(cams, 8, 12)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(3, 8, 12), atol=1e-5)
    pts = (origins + 2.0 * dirs).reshape(3, -1, 3)
    uvd = project(pts, cams, 8, 12).view(3, 8, 12, 3)
    jj, ii = torch.meshgrid(torch.arange(12.0), torch.arange(8.0), indexing="xy")
    assert torch.allclose(uvd[..., 0], (jj + 0.5).expand(3, 8, 12), atol=1e-3)
    assert torch.allclose(uvd[..., 1], (ii + 0.5).expand(3, 8, 12), atol=1e-3)


def test_look_at_is_orthonormal_even_straight_down():
    c2w = look_at(torch.tensor([[0.0, 3.0, 0.0], [1.0, 2.0, 3.0]]))
    rot = c2w[:, :3, :3]
    assert torch.allclose(rot.transpose(1, 2) @ rot, torch.eye(3).expand(2, 3, 3), atol=1e-5)
    assert torch.allclose(-rot[:, :, 2], -torch.nn.functional.normalize(c2w[:, :3, 3], dim=-1), atol=1e-5)


def test_sampled_cameras_respect_ranges():
    rng = CameraRanges(elevation=(5, 20), distance=(2.0, 2.2), fov=(30, 40))
    cams = sample_orbit_cameras(16, rng, torch.Generator().manual_seed(0))
    assert cams.elevation.min() >= 5 and cams.elevation.max() <= 20
    assert torch.allclose(cams.eye.norm(dim=-1), cams.distance, atol=1e-5)
    assert cams.fov.min() >= 30 and cams.fov.max() <= 40
    assert len(cams) == 16 and cams.azimuth.min() >= -180 and cams.azimuth.max() <= 180


@pytest.mark.parametrize("elev,azim,label", [(0, 0, "front"), (10, 40, "front"), (0, 90, "side"),
                                             (0, -100, "side"), (0, 180, "back"), (20, -170, "back"),
                                             (0, 530, "back"), (70, 0, "overhead")])
def test_view_labels(elev, azim, label):
    assert view_label(elev, azim) == label


def test_view_prompts():
    assert view_prompt("a red car", 0, 0) == "a red car, front view"
    cams = orbit_cameras(0.0, [0.0, 90.0, 180.0], 3.0, 45.0)
    assert view_prompts("x", cams) == ["x, front view", "x, side view", "x, back view"]


# --- volume rendering -------------------------------------------------------------------------------

def test_constant_box_opacity_is_exact():
    sigma = 0.7
    field = lambda p: (torch.full((p.shape[0],), sigma), torch.ones_like(p))  # noqa: E731
    cams = orbit_cameras(20.0, 30.0, 3.0, 50.0)
    r = VolumeRenderer(StratifiedSampler(n_samples=7, bound=1.0), SolidBackground((0, 0, 0)))
    out = r(field, cams, 16, 16, generator=torch.Generator().manual_seed(0))
    origins, dirs = generate_rays(cams, 16, 16)
    near, far, hit = ray_box(origins.reshape(-1, 3), dirs.reshape(-1, 3), 1.0)
    expected = (1 - torch.exp(-sigma * (far - near))).view(16, 16)
    assert hit.any() and (~hit).any()
    assert torch.allclose(out.opacity[0, 0], expected, atol=1e-5)


def test_sphere_opacity_and_silhouette():
    sph = Sphere(sigma=2.0, r=0.6)
    cams = orbit_cameras(10.0, 45.0, 2.5, 40.0)
    r = VolumeRenderer(StratifiedSampler(n_samples=512, bound=1.0), SolidBackground((0, 0, 1)))
    out = r(sph, cams, 16, 16, generator=torch.Generator().manual_seed(0))
    origins, dirs = generate_rays(cams, 16, 16)
    L = chord(origins[0], dirs[0], sph.r)
    expected = 1 - torch.exp(-sph.sigma * L)
    # two surface crossings, each off by at most sigma * delta (delta <= 2 sqrt(3) / 512) in depth
    assert (out.opacity[0, 0] - expected).abs().max() < 0.03
    assert (out.opacity[0, 0][L == 0] == 0).all()  # silhouette: nothing outside the disc
    assert (out.opacity[0, 0][L > 0.1] > 0.15).all()
    # colour: red foreground over the blue background, blended by opacity
    img = out.image[0]
    assert torch.allclose(img[0], out.opacity[0, 0], atol=1e-5)
    assert torch.allclose(img[2], 1 - out.opacity[0, 0], atol=1e-5)


def test_depth_of_an_opaque_sphere():
    sph = Sphere(sigma=200.0, r=0.5)
    cams = orbit_cameras(0.0, 0.0, 3.0, 30.0)
    r = VolumeRenderer(StratifiedSampler(n_samples=256, stratified=False))
    out = r(sph, cams, 16, 16)
    centre = out.depth[0, 0, 7:9, 7:9]
    assert torch.allclose(centre, torch.full_like(centre, 2.5), atol=0.02)
    assert out.depth[0, 0, 0, 0] == 0 and out.opacity[0, 0, 0, 0] == 0


def test_composite_weights_formula():
    sigma = torch.tensor([[0.5, 1.0, 2.0]])
    delta = torch.tensor([[0.2, 0.3, 0.4]])
    t = torch.tensor([[1.0, 1.3, 1.7]])
    c = composite(sigma, torch.ones(1, 3, 3), t, delta)
    tau = sigma * delta
    T = torch.tensor([[1.0, math.exp(-0.1), math.exp(-0.4)]])
    assert torch.allclose(c.weights, T * (1 - torch.exp(-tau)))
    assert torch.allclose(c.opacity, 1 - torch.exp(-tau.sum(-1)))


def test_lambertian_headlight_brightest_at_centre():
    # a smooth density (a soft ball), so that finite-difference normals point outwards
    field = lambda p: (60.0 * torch.sigmoid(40 * (0.5 - p.norm(dim=-1))), torch.ones_like(p))  # noqa: E731
    cams = orbit_cameras(0.0, 0.0, 3.0, 30.0)
    r = VolumeRenderer(StratifiedSampler(n_samples=128, stratified=False), SolidBackground((0, 0, 0)),
                       shader=LambertianShader(ambient=0.0, eps=1e-3))
    img = r(field, cams, 16, 16).image[0, 0]
    assert img[7:9, 7:9].min() > 0.9
    lit = r(field, cams, 16, 16, shading=False).image[0, 0]
    rim = (lit > 0.5) & (img < lit - 0.1)  # near the silhouette, surfaces turn away from the light
    assert rim.any()


def test_gradient_reaches_learned_background():
    bg = LearnedBackground()
    r = VolumeRenderer(StratifiedSampler(n_samples=8), bg)
    out = r(Sphere(), orbit_cameras(0.0, 0.0, 3.0, 50.0), 8, 8)
    out.image.mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in r.parameters())
