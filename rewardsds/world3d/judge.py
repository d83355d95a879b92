"""The 3D world's exact judge: reads a finished 3D field against a caption, model-free.

It grades the *field* (density + colour on a voxel grid), not rendered views, so a fact is right
or wrong once for the whole object, whatever the camera. Pipeline:

1. parse the caption with the 3D grammar (`scenes.parse_caption`; a view suffix is ignored);
2. occupied voxels = density > `density_threshold`; each takes the nearest world colour under a
   shading factor (`_label_colours`: a field distilled from shaded renders bakes the Lambert factor into
   its colour), or "other" when even the best match is farther than `OTHER_DISTANCE` (an off-palette blob);
3. 3D connected components per colour (scipy.ndimage.label, face connectivity); components under
   `min_volume` (scene units^3) are specks and dropped;
4. per component, each shape's ideal solid is fitted by moments (volume -> half-extent through the
   shape's fill ratio: cube 1, cylinder pi/4, sphere pi/6, cone pi/12; centroid -> position, a cone's
   centroid sitting h/2 lower) and voxelised on the same grid; the best voxel IoU names the shape
   (cubes are also tried turned about the vertical). Matching the whole solid, not only its fill
   ratio, also checks the vertical profile (a cone is widest at the bottom, a sphere in the middle,
   a cylinder nowhere), so a shape cannot pass for another by its volume alone. Size from the
   fitted half-extent (`SIZE_SPLIT`);
5. stated objects are matched to components by the assignment that satisfies most facts, and the
   facts are the 2D judge's (`object{i}.colour/.shape/.size`, `relation`, `count`), so eval code
   can treat both judges alike. Duplicates of a stated object (the 3D "Janus" failure: one object
   asked, two made) break `count`; `Verdict.duplicated` names them.

Relations use 3D centroids in the scene frame (`scenes`: +x right seen from the front, +z towards
the front camera, y up) with a margin of `RELATION_MARGIN`; "on top of" needs the first object's
bottom at or above the second's top (within `STACK_TOLERANCE`) and its centre over the second's
footprint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from rewardsds.world.grammar import Facts, best_facts

from .scenes import COLOURS, SHAPES, SIZE_SPLIT, Parsed, parse_caption, shape_inside

_COLOUR_NAMES = tuple(COLOURS)
_PALETTE = np.array([COLOURS[c] for c in _COLOUR_NAMES], dtype=np.float32)
OTHER_DISTANCE = 0.3
SHADE_RANGE = (0.4, 1.1)
"""shading factors a voxel's colour may carry over its albedo: the world's renders are lit as
``albedo * (0.6 + 0.4 max(0, n.l))`` (`render.AMBIENT` = 0.6), and a distilled field averages that over
the views it saw, with some slack below for soft, semi-transparent surfaces and above for highlights"""
MIN_VOLUME = 0.004
"""specks smaller than this (scene units^3; the smallest world object, a small cone, is ~0.017)"""
MIN_SHAPE_IOU = 0.6
RELATION_MARGIN = 0.2
STACK_TOLERANCE = 0.08
_FILL = {"cube": 1.0, "cylinder": np.pi / 4, "sphere": np.pi / 6, "cone": np.pi / 12}
_CENTROID_V = {"cube": 0.0, "cylinder": 0.0, "sphere": 0.0, "cone": -0.5}  # in units of h
_CUBE_YAWS = np.deg2rad(np.arange(0.0, 90.0, 15.0))


@dataclass(frozen=True)
class Component:
    colour: str  # a world colour name or "other"
    shape: str | None  # None when no shape fits with IoU >= MIN_SHAPE_IOU
    size: str
    centroid: tuple[float, float, float]  # world (x, y, z)
    lo: tuple[float, float, float]  # bounding box of its voxel centres
    hi: tuple[float, float, float]
    volume: float
    half: float  # fitted half-extent of the best shape
    iou: float  # of the best shape


@dataclass(frozen=True)
class Verdict(Facts):
    facts: dict[str, bool]
    components: tuple[Component, ...]
    duplicated: tuple[str, ...] = ()  # "colour shape" of stated objects made more than once


def voxelise(density_colour: Callable, bound: float = 1.0, resolution: int = 64
             ) -> tuple[np.ndarray, np.ndarray]:
    """Sample a field ``density_colour(points [N,3] torch) -> (density [N], rgb [N,3])`` (a
    `RadianceField`, `render.scene_density_colour` bound to a scene, ...) on a resolution^3 grid
    over ``[-bound, bound]^3``. Returns numpy (density [R,R,R], colour [R,R,R,3]) indexed [ix,iy,iz]."""
    import torch

    from rewardsds.representations.field import query_grid

    def packed(p: torch.Tensor) -> torch.Tensor:
        sigma, rgb = density_colour(p)
        return torch.cat([sigma.reshape(-1, 1).float(), rgb.reshape(-1, 3).float()], -1)

    out = query_grid(packed, bound, resolution).numpy()
    return out[..., 0], out[..., 1:]


def _label_colours(colour: np.ndarray) -> np.ndarray:
    """Nearest world colour index per voxel [...], or len(palette) for "other".

    Each colour c is matched to every palette colour p_k at its best shading factor,
    ``beta_k = clip(<c, p_k> / |p_k|^2, SHADE_RANGE)`` (least squares), with distance ``|c - beta_k p_k|``:
    a darker red is still red, while a colour off every palette line (a brown, a grey) stays "other"."""
    c = colour[..., None, :]
    beta = np.clip((c * _PALETTE).sum(-1) / (_PALETTE * _PALETTE).sum(-1), *SHADE_RANGE)
    dist = np.linalg.norm(c - beta[..., None] * _PALETTE, axis=-1)
    k = dist.argmin(-1)
    return np.where(np.take_along_axis(dist, k[..., None], -1)[..., 0] > OTHER_DISTANCE, len(_PALETTE), k)


def _fit_shape(mask: np.ndarray, origin: np.ndarray, dv: float) -> tuple[str | None, float, float]:
    """Best (shape, IoU, half-extent) for one component's boolean mask on a sub-grid whose first
    voxel centre is at `origin`, spacing dv. Each ideal solid is matched to the component's volume
    and centroid, then voxelised on the same sub-grid (padded so it never clips)."""
    idx = np.argwhere(mask)
    pts = origin + idx * dv
    volume = len(idx) * dv ** 3
    mean = pts.mean(0)
    best: tuple[str | None, float, float] = (None, 0.0, 0.0)
    for shape in SHAPES:
        h = 0.5 * (volume / _FILL[shape]) ** (1.0 / 3.0)
        centre = mean - np.array([0.0, _CENTROID_V[shape] * h, 0.0])
        pad = int(np.ceil(1.5 * h / dv)) + 2
        lo_i = np.minimum(idx.min(0), np.floor((centre - h - origin) / dv).astype(int)) - pad
        hi_i = np.maximum(idx.max(0), np.ceil((centre + h - origin) / dv).astype(int)) + pad
        axes = [origin[a] + np.arange(lo_i[a], hi_i[a] + 1) * dv for a in range(3)]
        x, y, z = np.meshgrid(*axes, indexing="ij")
        comp = np.zeros(x.shape, dtype=bool)
        comp[tuple((idx - lo_i).T)] = True
        u0, v, w0 = (x - centre[0]) / h, (y - centre[1]) / h, (z - centre[2]) / h
        for yaw in (_CUBE_YAWS if shape == "cube" else (0.0,)):
            c, s = np.cos(yaw), np.sin(yaw)
            ideal = shape_inside(shape, c * u0 + s * w0, v, -s * u0 + c * w0)
            inter = np.count_nonzero(ideal & comp)
            iou = inter / max(np.count_nonzero(ideal) + len(idx) - inter, 1)
            if iou > best[1]:
                best = (shape, iou, h)
    return (best[0] if best[1] >= MIN_SHAPE_IOU else None), best[1], best[2]


def find_components(density: np.ndarray, colour: np.ndarray, bound: float = 1.0,
                    density_threshold: float = 0.5, min_volume: float = MIN_VOLUME) -> list[Component]:
    """Objects in a voxel field (density [R,R,R], colour [R,R,R,3], indexed [ix,iy,iz] over
    ``[-bound, bound]^3``), largest first."""
    density, colour = np.asarray(density, np.float32), np.asarray(colour, np.float32)
    res = density.shape[0]
    dv = 2.0 * bound / (res - 1)
    occupied = density > density_threshold
    labels = np.where(occupied, _label_colours(colour), -1)
    comps = []
    for k, name in enumerate(_COLOUR_NAMES + ("other",)):
        lab, n = ndimage.label(labels == k)
        if n == 0:
            continue
        for i, sl in enumerate(ndimage.find_objects(lab), start=1):
            mask = lab[sl] == i
            volume = float(mask.sum()) * dv ** 3
            if volume < min_volume:
                continue
            origin = np.array([-bound + s.start * dv for s in sl])
            shape, iou, half = _fit_shape(mask, origin, dv)
            pts = origin + np.argwhere(mask) * dv
            comps.append(Component(name, shape, "big" if half > SIZE_SPLIT else "small",
                                   tuple(pts.mean(0).tolist()), tuple(pts.min(0).tolist()),
                                   tuple(pts.max(0).tolist()), volume, half, iou))
    return sorted(comps, key=lambda c: -c.volume)


def relation_holds(rel: str, a: Component, b: Component) -> bool:
    """Whether `a <rel> b` holds between two components, in the scene frame."""
    (ax, _, az), (bx, _, bz) = a.centroid, b.centroid
    if rel == "left of":
        return bx - ax > RELATION_MARGIN
    if rel == "right of":
        return ax - bx > RELATION_MARGIN
    if rel == "in front of":
        return az - bz > RELATION_MARGIN
    if rel == "behind":
        return bz - az > RELATION_MARGIN
    if rel == "on top of":
        over = np.hypot(ax - bx, az - bz) <= 0.5 * max(b.hi[0] - b.lo[0], b.hi[2] - b.lo[2])
        return bool(over and a.lo[1] >= b.hi[1] - STACK_TOLERANCE)
    return True  # "and": presence only, checked by the object facts


def judge_components(comps: list[Component], parsed: Parsed) -> Verdict:
    """Facts of a caption over found components, under the assignment that satisfies most."""
    best = best_facts(parsed, comps, relation_holds)
    dup = tuple(f"{o.colour} {o.shape}" for o in parsed.objects
                if sum(c.colour == o.colour and c.shape == o.shape for c in comps) > 1)
    return Verdict(best, tuple(comps), dup)


def judge3d(density: np.ndarray, colour: np.ndarray, prompt: str, bound: float = 1.0,
            density_threshold: float = 0.5, min_volume: float = MIN_VOLUME) -> Verdict:
    """Judge a voxelised field (see `find_components`) against a 3D world caption.

    `density_threshold` is in the field's own units: 0.5 suits 0/1 occupancy such as
    `render.scene_density_colour`; for a radiance field pick the density whose voxel is opaque
    enough to count (e.g. alpha = 1 - exp(-sigma * dv) >= 0.5).
    """
    parsed = parse_caption(prompt)
    return judge_components(find_components(density, colour, bound, density_threshold, min_volume), parsed)


def judge_field(density_colour: Callable, prompt: str, bound: float = 1.0, resolution: int = 64,
                density_threshold: float = 0.5, min_volume: float = MIN_VOLUME) -> Verdict:
    """`voxelise` a field callable, then `judge3d` it."""
    density, colour = voxelise(density_colour, bound, resolution)
    return judge3d(density, colour, prompt, bound, density_threshold, min_volume)
