"""Exports of a radiance field or a Gaussian set: a coloured mesh (.obj / .glb), a turntable video, a grid of
views, and for Gaussians a standard 3DGS .ply.

Mesh: marching cubes (Lorensen & Cline 1987; `skimage.measure.marching_cubes`) on the density sampled
over a resolution^3 lattice spanning the scene box, at the iso-level `level` (default: the mean
density of the lattice, threestudio's "auto" threshold); each vertex takes the field's colour there.
Every file is written atomically: into a temporary file in the same folder, then `os.replace`d, so a
reader never sees half a file. trimesh, scikit-image, imageio and PIL are imported inside functions.

Renders go through the renderer's call (`VolumeRenderer` or `render.splat.SplatRenderer`, same signature),
so turntables and view grids take either; only the mesh (a density callable) and the .ply dispatch on the
representation.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from . import media
from .media import atomic_path, atomic_torch_save  # noqa: F401 (re-exported for gen3d and users)
from .render import SolidBackground, VolumeRenderer, orbit_cameras, turntable_cameras
from .representations.field import query_grid

FieldFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
WHITE = SolidBackground((1.0, 1.0, 1.0))  # videos and grids: one fixed backdrop, whatever was trained


# --- mesh ------------------------------------------------------------------------------------------

def _bound(field, bound: float | None) -> float:
    return float(bound if bound is not None else getattr(field, "bound", 1.0))


def _device(field) -> torch.device:
    params = list(field.parameters()) if isinstance(field, torch.nn.Module) else []
    return params[0].device if params else torch.device("cpu")


@torch.no_grad()
def extract_mesh(field: FieldFn, resolution: int = 64, level: float | None = None,
                 bound: float | None = None):
    """A `trimesh.Trimesh` of the iso-surface ``sigma = level`` with RGBA vertex colours (uint8).

    Raises ValueError when the density never crosses the level (an empty or a full box)."""
    import trimesh
    from skimage.measure import marching_cubes

    b, dev = _bound(field, bound), _device(field)
    vol = query_grid(lambda p: field(p)[0], b, resolution, device=dev).numpy()
    level = float(vol.mean()) if level is None else float(level)
    if not vol.min() < level < vol.max():
        raise ValueError(f"the density ({vol.min():.3g}..{vol.max():.3g}) never crosses level {level:.3g}: "
                         "no surface to extract")
    step = 2 * b / (resolution - 1)
    # the lattice is indexed [x, y, z] (query_grid), so vertex columns come out as x, y, z; density
    # grows inwards, so "ascent" winds the faces counter-clockwise seen from outside (normals out)
    verts, faces, _, _ = marching_cubes(vol, level=level, spacing=(step, step, step),
                                        gradient_direction="ascent")
    verts = verts - b
    pts = torch.from_numpy(np.ascontiguousarray(verts, dtype=np.float32))
    rgb = torch.cat([field(pts[k:k + 65536].to(dev))[1].cpu() for k in range(0, len(pts), 65536)])
    colors = np.concatenate([(rgb.clamp(0, 1).numpy() * 255).round().astype(np.uint8),
                             np.full((len(verts), 1), 255, np.uint8)], 1)
    return trimesh.Trimesh(vertices=verts, faces=faces, vertex_colors=colors, process=False)


def save_mesh(mesh, path: str | os.PathLike) -> Path:
    """Write a trimesh mesh; the format follows the suffix (.obj, .glb, .ply, ...)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        mesh.export(str(tmp), file_type=path.suffix.lstrip("."))
    return path


def load_mesh(path: str | os.PathLike):
    """Load a mesh back as one `trimesh.Trimesh`, without merging or reordering vertices."""
    import trimesh

    return trimesh.load(str(path), force="mesh", process=False)


# --- renders ---------------------------------------------------------------------------------------

def eval_renderer(renderer: VolumeRenderer, n_samples: int | None = None) -> VolumeRenderer:
    """The same renderer (background and shader shared) with deterministic mid-bin samples; any other
    renderer (a splat rasteriser, deterministic already) is returned as it is."""
    if not isinstance(renderer, VolumeRenderer):
        return renderer
    s = renderer.sampler
    sampler = dataclasses.replace(s, stratified=False, n_samples=n_samples or s.n_samples)
    return VolumeRenderer(sampler, renderer.background, renderer.shader, renderer.chunk)


@torch.no_grad()
def render_turntable(field: FieldFn, renderer: VolumeRenderer, n_frames: int = 60, resolution: int = 128,
                     elevation: float = 15.0, distance: float = 2.75, fov: float = 50.0,
                     background: Callable | None = WHITE) -> np.ndarray:
    """Frames [N, H, W, 3] uint8 of one revolution, starting at the front (azimuth 0)."""
    r = eval_renderer(renderer)
    cams = turntable_cameras(n_frames, elevation, distance, fov).to(_device(field))
    frames = [r(field, cams[i], resolution, resolution,
                background=background, shading=False).image for i in range(n_frames)]
    return _to_uint8(torch.cat(frames))


@torch.no_grad()
def render_views(field: FieldFn, renderer: VolumeRenderer, azimuths=(0, 45, 90, 135, 180, 225, 270, 315),
                 resolution: int = 128, elevation: float = 15.0, distance: float = 2.75, fov: float = 50.0,
                 background: Callable | None = WHITE, shading: bool = False
                 ) -> np.ndarray:
    """Images [N, H, W, 3] uint8 at the given azimuths."""
    r = eval_renderer(renderer)
    cams = orbit_cameras(elevation, torch.tensor(azimuths, dtype=torch.float32), distance, fov)
    cams = cams.to(_device(field))
    imgs = [r(field, cams[i], resolution, resolution, background=background, shading=shading).image
            for i in range(len(cams))]
    return _to_uint8(torch.cat(imgs))


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N,3,H,W] in [0,1] -> [N,H,W,3] uint8."""
    return (images.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)


# --- files -----------------------------------------------------------------------------------------

def save_video(frames: np.ndarray, path: str | os.PathLike, fps: int = 24) -> Path:
    """Turntable frames [N,H,W,3] uint8 -> MP4, GIF fallback (see `media.save_video`)."""
    return media.save_video(path, frames, fps)


def image_grid(images: np.ndarray, ncols: int | None = None, pad: int = 0) -> np.ndarray:
    """Tile [N,H,W,3] uint8 into one [rows*H, cols*W, 3] image (row-major, white filler)."""
    n, h, w, c = images.shape
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    out = np.full((nrows * (h + pad) - pad, ncols * (w + pad) - pad, c), 255, np.uint8)
    for k in range(n):
        i, j = divmod(k, ncols)
        out[i * (h + pad):i * (h + pad) + h, j * (w + pad):j * (w + pad) + w] = images[k]
    return out


def save_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format=path.suffix.lstrip(".").upper().replace("JPG", "JPEG"))
    return path


def export_field(field: FieldFn, renderer: VolumeRenderer, out_dir: str | os.PathLike, resolution: int = 128,
                 n_frames: int = 60, mesh_resolution: int = 64, level: float | None = None,
                 fps: int = 24, mesh_field: FieldFn | None = None) -> dict[str, Path]:
    """Everything at the end of a run: turntable.mp4 (or .gif), views.png, mesh.obj and mesh.glb.
    A field with no surface at the level gets no mesh (the other files are still written). `mesh_field`
    (default: `field` itself) is the point-query (density, rgb) the mesh is extracted from."""
    out_dir = Path(out_dir)
    files = {"turntable": save_video(render_turntable(field, renderer, n_frames, resolution),
                                     out_dir / "turntable.mp4", fps),
             "views": save_image(image_grid(render_views(field, renderer, resolution=resolution), ncols=4),
                                 out_dir / "views.png")}
    try:
        mf = field if mesh_field is None else mesh_field
        mesh = extract_mesh(mf, mesh_resolution, level, bound=getattr(mf, "bound", None) or _bound(field, None))
    except ValueError as e:
        warnings.warn(f"no mesh exported: {e}", stacklevel=2)
        return files
    files["obj"] = save_mesh(mesh, out_dir / "mesh.obj")
    files["glb"] = save_mesh(mesh, out_dir / "mesh.glb")
    return files


# --- Gaussians ---------------------------------------------------------------------------------------

PLY_PROPERTIES = ("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                  "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
"""The vertex layout of 3DGS's `save_ply` at SH degree 0 (no f_rest): raw parameters, i.e. log-scales, the
opacity logit, the unnormalised quaternion (w, x, y, z) and the SH DC coefficients; normals are zeros.
Common viewers (SIBR, SuperSplat, antimatter15/splat, gsplat.js) read it."""


def save_ply(path: str | os.PathLike, gaussians) -> Path:
    """A binary little-endian .ply of a `GaussianModel` (float32 properties `PLY_PROPERTIES`)."""
    cols = [gaussians.means, torch.zeros_like(gaussians.means), gaussians.sh_dc, gaussians.opacity_logits[:, None],
            gaussians.log_scales, gaussians.quats]
    data = torch.cat([c.detach().float().cpu() for c in cols], 1).numpy().astype("<f4")
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {data.shape[0]}\n" + "".join(
        f"property float {name}\n" for name in PLY_PROPERTIES) + "end_header\n"
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(np.ascontiguousarray(data).tobytes())
    return path


def load_ply(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The float32 vertex properties of a binary little-endian .ply, by name (enough to read `save_ply`'s
    files and 3DGS's own)."""
    raw = Path(path).read_bytes()
    end = raw.find(b"end_header\n")
    if not raw.startswith(b"ply\n") or end < 0:
        raise ValueError(f"{str(path)!r} is not a PLY file")
    lines = raw[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in lines:
        raise ValueError(f"{str(path)!r}: only binary little-endian PLY files are read")
    n = next(int(ln.split()[2]) for ln in lines if ln.startswith("element vertex"))
    names = [ln.split()[2] for ln in lines if ln.startswith("property float")]
    if len(names) != sum(ln.startswith("property") for ln in lines):
        raise ValueError(f"{str(path)!r}: only float vertex properties are read")
    data = np.frombuffer(raw, dtype="<f4", count=n * len(names), offset=end + len(b"end_header\n"))
    data = data.reshape(n, len(names))
    return {name: data[:, i] for i, name in enumerate(names)}


def export_gaussians(gaussians, renderer, out_dir: str | os.PathLike, resolution: int = 128, n_frames: int = 60,
                     mesh_resolution: int = 64, level: float | None = None, fps: int = 24) -> dict[str, Path]:
    """`export_field`'s files for a `GaussianModel` (turntable and views through `renderer`, a `SplatRenderer`;
    the mesh from the Gaussians' summed densities, `GaussianModel.field_fn`) plus gaussians.ply."""
    files = export_field(gaussians, renderer, out_dir, resolution, n_frames, mesh_resolution, level, fps,
                         mesh_field=_GaussianDensity(gaussians))
    return {"ply": save_ply(Path(out_dir) / "gaussians.ply", gaussians), **files}


class _GaussianDensity:
    """A Gaussian set as the point-query `(density, rgb)` that `extract_mesh` samples."""

    def __init__(self, gaussians) -> None:
        self.gaussians, self.bound = gaussians, gaussians.bound

    def __call__(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.gaussians.field_fn(points)
