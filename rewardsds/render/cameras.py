"""Orbit cameras, look-at, view labels and ray generation.

Conventions (OpenGL / NeRF style, used everywhere in `rewardsds.render`):

* World: right-handed, **y up**. The object sits at the origin inside the box ``[-bound, bound]^3``.
* Orbit parameters, in degrees: elevation ``e`` above the xz-plane, azimuth ``a`` around +y with
  ``a = 0`` on the +z axis (the **front**) and ``a = 90`` on +x; distance ``d`` from the origin::

      eye = d * (cos e sin a,  sin e,  cos e cos a)

* Camera frame: x right, y up, the camera **looks along -z**. A camera-to-world matrix ``c2w``
  [4,4] holds the columns (right, up, back, eye), back = -forward.
* Image: row 0 is the top, column 0 the left; pixel (i, j) has its centre at (j + 0.5, i + 0.5).
  With focal length ``f = (W / 2) / tan(fov / 2)`` (fov is horizontal), the camera-space direction
  of that pixel is ``((j + 0.5 - W/2) / f, -(i + 0.5 - H/2) / f, -1)``. A point straight ahead of the
  camera therefore lands in the image centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CameraRanges:
    """Ranges (inclusive, degrees / scene units) that training cameras are drawn from uniformly.

    Defaults after DreamFusion / threestudio (elevation -10..45, all azimuths, fov 40..60), with the
    distance set so that the unit box ``[-1, 1]^3`` stays in view and the initial blob (radius 0.5)
    covers about a tenth of the image.
    """

    elevation: tuple[float, float] = (-10.0, 45.0)
    """degrees above the ground plane (min max)"""
    azimuth: tuple[float, float] = (-180.0, 180.0)
    """degrees around the vertical axis, 0 = front (min max)"""
    distance: tuple[float, float] = (2.5, 3.0)
    """camera distance from the centre, scene units (min max)"""
    fov: tuple[float, float] = (40.0, 60.0)
    """horizontal field of view in degrees (min max)"""


@dataclass(frozen=True)
class Cameras:
    """A batch of B pinhole cameras. Angles in degrees; `fov` is the horizontal field of view."""

    c2w: torch.Tensor  # [B, 4, 4]
    fov: torch.Tensor  # [B] degrees
    elevation: torch.Tensor  # [B] degrees (kept for view labels / lighting)
    azimuth: torch.Tensor  # [B] degrees
    distance: torch.Tensor  # [B]

    def __len__(self) -> int:
        return int(self.c2w.shape[0])

    @property
    def eye(self) -> torch.Tensor:
        """Camera centres [B, 3] in world space."""
        return self.c2w[:, :3, 3]

    def __getitem__(self, index) -> Cameras:
        """A sub-batch; an int keeps the batch dimension (cams[i] has one camera)."""
        index = slice(index, index + 1) if isinstance(index, int) else index
        return Cameras(*(getattr(self, k)[index] for k in ("c2w", "fov", "elevation", "azimuth", "distance")))

    def to(self, device: torch.device | str) -> Cameras:
        return Cameras(*(getattr(self, k).to(device) for k in
                         ("c2w", "fov", "elevation", "azimuth", "distance")))


def look_at(eye: torch.Tensor, target: torch.Tensor | None = None, up: torch.Tensor | None = None
            ) -> torch.Tensor:
    """Camera-to-world matrices [B,4,4] for cameras at `eye` [B,3] looking at `target` (origin).

    forward = normalise(target - eye); right = normalise(forward x up); up' = right x forward;
    columns (right, up', -forward, eye). A camera straight above or below (forward parallel to up)
    falls back to up = -z so that the frame stays defined.
    """
    eye = eye.float()
    target = torch.zeros_like(eye) if target is None else target.float().expand_as(eye)
    up = eye.new_tensor([0.0, 1.0, 0.0]) if up is None else up.float()
    up = up.expand_as(eye)
    fwd = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.linalg.cross(fwd, up, dim=-1)
    degenerate = right.norm(dim=-1) < 1e-6
    if degenerate.any():  # looking straight down/up: any perpendicular 'up' will do
        alt = torch.linalg.cross(fwd, eye.new_tensor([0.0, 0.0, -1.0]).expand_as(eye), dim=-1)
        right = torch.where(degenerate[:, None], alt, right)
    right = torch.nn.functional.normalize(right, dim=-1)
    true_up = torch.linalg.cross(right, fwd, dim=-1)
    c2w = torch.eye(4, dtype=eye.dtype, device=eye.device).repeat(eye.shape[0], 1, 1)
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = right, true_up, -fwd, eye
    return c2w


def orbit_eye(elevation: torch.Tensor, azimuth: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """``d (cos e sin a, sin e, cos e cos a)`` [B,3] from angles in degrees."""
    e, a = torch.deg2rad(elevation.float()), torch.deg2rad(azimuth.float())
    return distance.float()[:, None] * torch.stack(
        [torch.cos(e) * torch.sin(a), torch.sin(e), torch.cos(e) * torch.cos(a)], -1)


def orbit_cameras(elevation, azimuth, distance, fov) -> Cameras:
    """Cameras on an orbit around the origin, all looking at it. Scalars broadcast to the batch."""
    vals = [torch.as_tensor(v, dtype=torch.float32).flatten() for v in (elevation, azimuth, distance, fov)]
    b = max(v.shape[0] for v in vals)
    e, a, d, f = (v.expand(b).clone() for v in vals)
    return Cameras(look_at(orbit_eye(e, a, d)), f, e, a, d)


def sample_orbit_cameras(n: int, ranges: CameraRanges = CameraRanges(),
                         generator: torch.Generator | None = None) -> Cameras:
    """n cameras with elevation, distance and fov each uniform in its range; azimuths uniform for
    n = 1, an evenly spaced ring with a uniform offset for n > 1 over a full circle."""

    def uniform(lo_hi: tuple[float, float]) -> torch.Tensor:
        lo, hi = lo_hi
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    # azimuths are drawn as an evenly spaced ring with a random offset when n > 1, so the views of
    # one step cover the object (as in the multi-view batches of threestudio) rather than cluster
    lo, hi = ranges.azimuth
    if n > 1 and hi - lo >= 360.0:
        offset = lo + (hi - lo) * torch.rand(1, generator=generator)
        az = (offset + torch.arange(n) * 360.0 / n - lo) % 360.0 + lo
    else:
        az = uniform(ranges.azimuth)
    return orbit_cameras(uniform(ranges.elevation), az, uniform(ranges.distance), uniform(ranges.fov))


def sample_camera_sets(sets: int, views: int, ranges: CameraRanges = CameraRanges(),
                       generator: torch.Generator | None = None) -> Cameras:
    """`sets` sets of `views` cameras each (row s*views + v is view v of set s), as a multi-view prior is
    trained (MVDream): per set ONE elevation, distance and fov, each uniform in its range, and azimuths
    a, a + 360/V, a + 2*360/V, ... around a start a uniform in the azimuth range (wrapped into
    [lo, lo + 360))."""
    u = torch.rand(sets, 4, generator=generator)
    e, a, d, f = (lo + (hi - lo) * u[:, k] for k, (lo, hi) in
                  enumerate((ranges.elevation, ranges.azimuth, ranges.distance, ranges.fov)))
    lo = ranges.azimuth[0]
    az = ((a[:, None] + torch.arange(views) * 360.0 / views - lo) % 360.0 + lo).reshape(-1)
    e, d, f = (x.repeat_interleave(views) for x in (e, d, f))  # one value per set -> one per view
    return orbit_cameras(e, az, d, f)


def turntable_cameras(n: int, elevation: float = 15.0, distance: float = 2.75, fov: float = 50.0
                      ) -> Cameras:
    """n cameras evenly around the object (azimuth 0, 360/n, ...), starting at the front."""
    return orbit_cameras(elevation, torch.arange(n) * 360.0 / n, distance, fov)


# --- view-dependent prompting (DreamFusion section 3.2) ----------------------------------------

def view_label(elevation: float, azimuth: float, front_half_width: float = 45.0,
               back_half_width: float = 45.0, overhead_above: float = 60.0) -> str:
    """'overhead' above `overhead_above` degrees of elevation, else 'front' within +-45 degrees of
    azimuth 0, 'back' within +-45 degrees of 180, 'side' otherwise (DreamFusion's thresholds)."""
    if elevation > overhead_above:
        return "overhead"
    a = (float(azimuth) + 180.0) % 360.0 - 180.0  # wrap to [-180, 180)
    if abs(a) <= front_half_width:
        return "front"
    if abs(a) >= 180.0 - back_half_width:
        return "back"
    return "side"


def view_prompt(prompt: str, elevation: float, azimuth: float) -> str:
    """The prompt with the view appended: 'a red car' -> 'a red car, front view'."""
    return f"{prompt}, {view_label(elevation, azimuth)} view"


def view_prompts(prompt: str, cameras: Cameras) -> list[str]:
    pairs = zip(cameras.elevation.tolist(), cameras.azimuth.tolist(), strict=True)
    return [view_prompt(prompt, e, a) for e, a in pairs]


# --- rays and projection -------------------------------------------------------------------------

def focal_length(fov_deg: torch.Tensor, width: int) -> torch.Tensor:
    """Focal length in pixels, ``f = (W / 2) / tan(fov / 2)``."""
    return 0.5 * width / torch.tan(0.5 * torch.deg2rad(fov_deg.float()))


def generate_rays(cameras: Cameras, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space ray origins and unit directions, each [B, H, W, 3], one ray per pixel centre."""
    dev = cameras.c2w.device
    f = focal_length(cameras.fov, width).to(dev)[:, None, None]  # [B,1,1]
    i, j = torch.meshgrid(torch.arange(height, device=dev, dtype=torch.float32),
                          torch.arange(width, device=dev, dtype=torch.float32), indexing="ij")
    x = (j + 0.5 - 0.5 * width)[None] / f
    y = -(i + 0.5 - 0.5 * height)[None] / f
    d_cam = torch.stack([x, y, -torch.ones_like(x)], -1)  # [B,H,W,3]
    rot = cameras.c2w[:, :3, :3]
    dirs = torch.nn.functional.normalize(torch.einsum("bij,bhwj->bhwi", rot, d_cam), dim=-1)
    origins = cameras.eye[:, None, None, :].expand_as(dirs)
    return origins, dirs


def project(points: torch.Tensor, cameras: Cameras, height: int, width: int) -> torch.Tensor:
    """Pixel coordinates (u = column, v = row, continuous, pixel centres at +0.5) and camera depth of
    world points [B, P, 3] -> [B, P, 3] as (u, v, depth). The inverse of `generate_rays`."""
    w2c = torch.linalg.inv(cameras.c2w)
    p = torch.einsum("bij,bpj->bpi", w2c[:, :3, :3], points) + w2c[:, None, :3, 3]
    depth = -p[..., 2]  # the camera looks along -z
    f = focal_length(cameras.fov, width).to(points.device)[:, None]
    u = 0.5 * width + f * p[..., 0] / depth
    v = 0.5 * height - f * p[..., 1] / depth
    return torch.stack([u, v, depth], -1)
