"""The 3D world's ray caster and density field against closed forms and each other."""

import functools
import math
import random

import pytest
import torch

from rewardsds.render.cameras import orbit_cameras
from rewardsds.render.volume import StratifiedSampler, VolumeRenderer
from rewardsds.world.scenes import BACKGROUND
from rewardsds.world3d.render import FOV, RADIUS, render, render_views, scene_density_colour
from rewardsds.world3d.scenes import COLOURS, SHAPES, Obj, Scene, sample_scene

BG = torch.tensor(BACKGROUND)[:, None, None]


def _solo(shape, h=0.35, colour="red", x=0.0, z=0.0, base=None):
    """One solid centred on the origin (so the camera looks at its middle)."""
    return Scene((Obj(colour, shape, "big", x, z, -h if base is None else base, h),))


def _mask(img):
    return (img - BG).abs().sum(0) > 0.02


def _colour_mask(img, name):
    """Pixels whose chromaticity is this world colour's (shading only scales a colour)."""
    rgb = img / img.sum(0, keepdim=True).clamp_min(1e-6)
    ref = torch.tensor(COLOURS[name]) / sum(COLOURS[name])
    return _mask(img) & ((rgb - ref[:, None, None]).abs().sum(0) < 0.08)


def test_shapes_range_and_batching():
    sc = sample_scene(random.Random(0), 2)
    az, el = [0.0, 37.0, 200.0], [0.0, 25.0, 60.0]
    batch = render_views(sc, az, el, size=24, supersample=2, ground=True)
    assert batch.shape == (3, 3, 24, 24) and batch.dtype == torch.float32
    assert batch.min() >= 0 and batch.max() <= 1
    for i in range(3):
        single = render(sc, az[i], el[i], size=24, supersample=2, ground=True)
        assert single.shape == (3, 24, 24)
        torch.testing.assert_close(single, batch[i], atol=1e-5, rtol=0)


def test_empty_scene_is_backdrop():
    img = render(Scene(()), 30.0, 20.0, size=8)
    torch.testing.assert_close(img, BG.expand(3, 8, 8))


@pytest.mark.parametrize("az,el", [(0, 0), (73, 0), (180, 40), (290, 60)])
def test_sphere_silhouette_is_a_disk_of_the_projected_radius(az, el):
    h, size = 0.35, 64
    f = 0.5 * size / math.tan(math.radians(FOV / 2))
    rho = f * h / math.sqrt(RADIUS ** 2 - h ** 2)  # a centred sphere's exact image radius
    area = _mask(render(_solo("sphere", h), az, el, size=size)).sum().item()
    assert area == pytest.approx(math.pi * rho ** 2, rel=0.05)


def test_cube_silhouette_turns_with_azimuth():
    front = _mask(render(_solo("cube"), 0.0, 0.0, size=64))
    corner = _mask(render(_solo("cube"), 45.0, 0.0, size=64))
    width = lambda m: m.any(0).sum().item()  # noqa: E731
    assert width(corner) / width(front) == pytest.approx(math.sqrt(2), rel=0.1)  # a face vs a diagonal
    assert corner.sum() > 1.2 * front.sum()


def test_cone_is_a_triangle_from_the_side_and_a_disk_from_above():
    side = _mask(render(_solo("cone"), 90.0, 0.0, size=64))
    rows = side.sum(1)[side.any(1)]  # width of each covered row, top to bottom
    n = len(rows)
    assert rows[-n // 4:].float().mean() > 2.5 * rows[: n // 4].float().mean()
    assert (rows[1:] >= rows[:-1] - 1).all()  # widens monotonically downwards
    top = _mask(render(_solo("cone"), 0.0, 90.0, size=64))
    w, hgt = top.any(0).sum().item(), top.any(1).sum().item()
    assert w == pytest.approx(hgt, abs=1) and top.sum().item() / (w * hgt) == pytest.approx(math.pi / 4, abs=0.05)


def test_occlusion_depends_on_the_view():
    sc = Scene((Obj("red", "cube", "big", 0.0, 0.45, -0.3, 0.3), Obj("blue", "cube", "big", 0.0, -0.45, -0.3, 0.3)))
    front = render(sc, 0.0, 0.0, size=48)
    assert _colour_mask(front, "red").sum() > 50 and _colour_mask(front, "blue").sum() == 0
    side = render(sc, 90.0, 0.0, size=48)  # camera on +x: the front (+z) object is on the left
    red, blue = _colour_mask(side, "red"), _colour_mask(side, "blue")
    assert red.sum() > 50 and blue.sum() > 30
    cols = torch.arange(48.0)
    assert (red.any(0) * cols).sum() / red.any(0).sum() < (blue.any(0) * cols).sum() / blue.any(0).sum()


def test_cube_faces_are_shaded_differently():
    img = render(_solo("cube"), 45.0, 30.0, size=48)
    values, counts = img[0][_mask(img)].round(decimals=3).unique(return_counts=True)
    assert (counts > 20).sum() >= 3  # top, front and right faces


def test_ground_is_optional():
    sc = _solo("sphere", base=-0.6)
    assert (render(sc, 0.0, 30.0) == render(sc, 0.0, 30.0, ground=False)).all()
    assert _mask(render(sc, 0.0, 30.0, ground=True)).sum() > _mask(render(sc, 0.0, 30.0)).sum() + 100


@pytest.mark.parametrize("shape,volume", [("cube", 8.0), ("cylinder", 2 * math.pi), ("sphere", 4 * math.pi / 3),
                                          ("cone", 2 * math.pi / 3)])
def test_density_field_volume_and_colour(shape, volume):
    h = 0.3
    sc = _solo(shape, h, colour="green", x=0.1, z=-0.2)
    g = -0.5 + (torch.arange(80) + 0.5) / 80  # cell centres: no sample on a face
    pts = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).view(-1, 3)
    density, rgb = scene_density_colour(sc, pts)
    dv = (1.0 / 80) ** 3
    assert density.sum().item() * dv == pytest.approx(volume * h ** 3, rel=0.05)
    inside = density > 0
    torch.testing.assert_close(rgb[inside], torch.tensor(COLOURS["green"]).expand(int(inside.sum()), 3))
    torch.testing.assert_close(rgb[~inside][0], torch.tensor(BACKGROUND))


def _opaque(scene, points):
    density, rgb = scene_density_colour(scene, points)
    return 1e3 * density, rgb  # solids: every voxel of them is opaque


def test_ray_caster_agrees_with_volume_rendering_of_the_field():
    """Same cameras, same geometry: the casting's silhouette and colours are the field's."""
    rng = random.Random(4)
    for _ in range(3):
        sc = sample_scene(rng, 2, split="all")
        az, el = rng.uniform(0, 360), rng.uniform(0, 60)
        cast = render(sc, az, el, size=32)
        out = VolumeRenderer(StratifiedSampler(256, 1.0, stratified=False))(
            functools.partial(_opaque, sc),
            orbit_cameras(el, az, RADIUS, FOV), 32, 32)
        opacity = out.opacity[0, 0]
        assert (_mask(cast) == (opacity > 0.5)).float().mean() > 0.97, (sc, az, el)
        both = _mask(cast) & (opacity > 0.99)
        chroma = lambda x: x / x.sum(0, keepdim=True).clamp_min(1e-6)  # noqa: E731  (shading scales)
        same = (chroma(cast) - chroma(out.foreground[0])).abs().sum(0) < 0.05
        assert same[both].float().mean() > 0.95, (sc, az, el)


def test_all_shapes_render_from_everywhere():
    for shape in SHAPES:
        imgs = render_views(_solo(shape), torch.arange(0.0, 360.0, 30.0), torch.linspace(0.0, 90.0, 12), size=16)
        assert torch.isfinite(imgs).all() and all(_mask(i).sum() >= 8 for i in imgs)
