"""Mesh export (marching cubes, vertex colours, .obj/.glb round trip), turntable video, view grid."""

import numpy as np
import pytest
import torch

from rewardsds import export3d
from rewardsds.render import SolidBackground, StratifiedSampler, VolumeRenderer


class SoftSphere(torch.nn.Module):
    """Density 10 * sigmoid(20 (r0 - |x|)), so the level-5 surface is the sphere |x| = r0; red where
    x > 0 and blue where x < 0."""

    bound = 1.0

    def __init__(self, r0=0.5):
        super().__init__()
        self.r0 = r0

    def forward(self, p):
        sigma = 10 * torch.sigmoid(20 * (self.r0 - p.norm(dim=-1)))
        red = (p[:, :1] > 0).float()
        return sigma, torch.cat([red, torch.zeros_like(red), 1 - red], -1)


@pytest.fixture
def renderer():
    return VolumeRenderer(StratifiedSampler(16), SolidBackground((1, 1, 1)))


def test_mesh_is_the_sphere_with_colours_and_round_trips(tmp_path):
    mesh = export3d.extract_mesh(SoftSphere(), resolution=24, level=5.0)
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert len(mesh.vertices) > 100 and np.abs(radii - 0.5).max() < 0.03
    assert mesh.is_watertight and mesh.volume > 0  # closed, normals outwards
    cols = mesh.visual.vertex_colors
    right, left = mesh.vertices[:, 0] > 0, mesh.vertices[:, 0] < 0
    assert (cols[right, 0] == 255).all() and (cols[right, 2] == 0).all()
    assert (cols[left, 0] == 0).all() and (cols[left, 2] == 255).all() and left.sum() > 100
    for suffix in ("obj", "glb"):
        path = export3d.save_mesh(mesh, tmp_path / f"m.{suffix}")
        back = export3d.load_mesh(path)
        assert len(back.vertices) == len(mesh.vertices) and len(back.faces) == len(mesh.faces)
        assert np.allclose(np.asarray(back.vertices), mesh.vertices, atol=1e-5)
        assert np.array_equal(np.asarray(back.visual.vertex_colors)[:, :3], cols[:, :3])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.glb", "m.obj"]  # no temp files left


def test_mesh_needs_a_crossing():
    with pytest.raises(ValueError, match="never crosses"):
        export3d.extract_mesh(SoftSphere(), resolution=8, level=50.0)


def test_turntable_mp4_and_gif_fallback(tmp_path, renderer, monkeypatch):
    frames = export3d.render_turntable(SoftSphere(), renderer, n_frames=4, resolution=17)
    assert frames.shape == (4, 17, 17, 3) and frames.dtype == np.uint8
    # the sphere sits in the middle over a white background
    assert frames[:, 8, 8].min() < 200 and (frames[:, 0, 0] == 255).all()
    path = export3d.save_video(frames, tmp_path / "t.mp4", fps=4)
    assert path.suffix == ".mp4" and path.stat().st_size > 0
    import imageio.v2 as imageio

    with imageio.get_reader(str(path)) as rd:
        assert sum(1 for _ in rd) == 4

    def broken(*a, **k):
        raise RuntimeError("no ffmpeg")

    from rewardsds import media

    monkeypatch.setattr(media, "_write_mp4", broken)
    gif = export3d.save_video(frames, tmp_path / "u.mp4", fps=4)
    assert gif.name == "u.gif" and not (tmp_path / "u.mp4").exists()
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == 4 and im.size == (17, 17)


def test_view_grid_png(tmp_path, renderer):
    views = export3d.render_views(SoftSphere(), renderer, azimuths=(0, 90, 180), resolution=8)
    grid = export3d.image_grid(views, ncols=2)
    assert grid.shape == (16, 16, 3) and (grid[8:, 8:] == 255).all()
    path = export3d.save_image(grid, tmp_path / "views.png")
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(path)), grid)
    # the front view (azimuth 0, camera on +z) sees red (x > 0) on the right half, blue on the left
    front = views[0]
    assert front[4, 6, 0] > front[4, 6, 2] and front[4, 1, 2] > front[4, 1, 0]


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with export3d.atomic_path(tmp_path / "x.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_export_field_writes_everything(tmp_path, renderer):
    files = export3d.export_field(SoftSphere(), renderer, tmp_path, resolution=16, n_frames=3,
                                  mesh_resolution=16, level=5.0)
    assert set(files) == {"turntable", "views", "obj", "glb"}
    assert all(p.exists() and p.stat().st_size > 0 for p in files.values())


def test_atomic_write_gives_outputs_the_usual_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        with export3d.atomic_path(tmp_path / "x.png") as tmp:
            tmp.write_bytes(b"data")
    finally:
        os.umask(old)
    assert (tmp_path / "x.png").stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
