"""The 2D reading of one view: which stated facts a single 32x32 image (a prior sample or a render) shows.

The 3D judge (`judge`) grades a finished field; the view-aware prior only makes images, one view at a
time, so its gate needs a reader of images. What an image can tell depends on the view, which the
caption states only coarsely (", front view": azimuth within 45 degrees, elevation 0-60 unknown), so
the reader asks only what every camera of that class shows:

1. colour: pixels are unmixed as ``p = alpha bg + beta c_k`` (least squares per world colour ``c_k``):
   shading scales a colour (Lambert, ``beta`` in [0.6, 1]) and anti-aliased edges mix it with the
   backdrop, so both stay in the plane of ``bg`` and ``c_k`` while other colours do not. A pixel takes
   the colour with the smallest residual if its coverage ``1 - alpha`` > 0.5. A stated colour is
   present with at least `min_area` pixels; `count` says no unstated colour is;
2. silhouette: the largest connected segment of a stated colour (soft coverage) is compared with
   the exact renders (`render`) of each shape at the origin, over every elevation of the view class
   and, for the cube, every yaw (the solids are symmetric about the vertical, the cube every 90
   degrees, so the azimuth inside a class does not matter). Both masks are cropped to their bounding
   box and scaled by its longer side into a square canvas (aspect ratio kept: a cube turned 45
   degrees is wider than it is high, a cylinder seen level is not); the best soft IoU names the
   shape. Template matching rather than descriptors (fill ratio, top/bottom width) because the
   renderer already knows every silhouette exactly, perspective and elevation included, and one
   rule covers all four shapes; overhead, sphere, cylinder and cone are all disks, so there the
   shape fact only asks "cube or round";
3. relations: "left of"/"right of" from the segments' centroid x on front views (mirrored on back
   views), "on top of" from centroid y on any non-overhead view. Side and overhead views cannot show
   left/right, and no view shows "in front of"/"behind" reliably, so those facts are not asked.

Facts are named as the judges' (``object{i}.colour``, ``object{i}.shape``, ``relation``, ``count``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from rewardsds.world.grammar import Facts

from .scenes import BACKGROUND, COLOURS, SHAPES, VIEWS, parse_caption

_NAMES = tuple(COLOURS)
_PALETTE = np.array([COLOURS[c] for c in _NAMES], dtype=np.float32)
_BG = np.array(BACKGROUND, dtype=np.float32)
_VIEW_RE = re.compile(r",\s*(" + "|".join(VIEWS) + r")\s+view\s*$")
CANVAS = 16
"""side of the square canvas both masks are resampled into"""
SPAN = 2.0
"""the canvas spans SPAN x sqrt(segment area) pixels: room for a flat cube or a tall cone"""
SHADE_WEIGHT = 0.5
"""weight of the shading maps' difference against the masks' IoU in the template score"""
MAX_RESIDUAL = 0.15
"""a pixel farther than this from every colour's plane is "other" (no world colour)"""
RELATION_MARGIN = 0.04
"""centroids must differ by this fraction of the image along the stated axis"""
ROUND = ("sphere", "cylinder", "cone")


@dataclass(frozen=True)
class Segment:
    colour: str
    shape: str | None  # best template; None when the colour is absent
    iou: float
    area: int
    cx: float  # centroid, fraction of the image width (0 = left)
    cy: float  # fraction of the height (0 = top)


@dataclass(frozen=True)
class Reading(Facts):
    facts: dict[str, bool]
    view: str | None
    segments: tuple[Segment, ...]


def split_view(caption: str) -> tuple[str, str | None]:
    """("a red cube", "front") from "a red cube, front view"; view None without a suffix."""
    m = _VIEW_RE.search(caption.lower())
    return (caption[: m.start()], m.group(1)) if m else (caption, None)


def label_pixels(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel labels of an HxWx3 image in [0,1] (-1 backdrop, k world colour, K other) and each
    pixel's coverage by its colour (0 for the backdrop)."""
    p = img.reshape(-1, 3).astype(np.float32)
    basis = np.stack([np.broadcast_to(_BG, _PALETTE.shape), _PALETTE], -1)  # K,3,2: columns bg, c_k
    pinv = np.linalg.pinv(basis)  # K,2,3
    coef = np.einsum("kjc,nc->nkj", pinv, p)  # N,K,2: (alpha, beta)
    resid = np.linalg.norm(p[:, None, :] - np.einsum("kcj,nkj->nkc", basis, coef), axis=-1)
    k = resid.argmin(-1)
    r = resid[np.arange(len(p)), k]
    cover = np.clip(1.0 - coef[np.arange(len(p)), k, 0], 0.0, 1.0)
    far_from_bg = np.linalg.norm(p - _BG, axis=-1) > 0.2
    labels = np.where(cover > 0.5, k, -1)
    labels = np.where((r > MAX_RESIDUAL) & far_from_bg, len(_NAMES), labels)
    cover = np.where(labels == -1, 0.0, cover)
    h, w = img.shape[:2]
    return labels.reshape(h, w), cover.reshape(h, w).astype(np.float32)


def normalise(maps: np.ndarray, canvas: int = CANVAS) -> np.ndarray:
    """Maps [C,H,W] (channel 0 a soft mask) resampled (bilinear) into [C, canvas, canvas], centred on the
    mask's centroid and scaled by the square root of its mass (its area): position and size go, outline
    and aspect ratio stay. Moments rather than the bounding box, because a 6-pixel object's box is
    quantised to whole pixels and a sphere's then looks as square as a cube's; mass and centroid are
    sub-pixel."""
    import torch

    mask = maps[0]
    mass = float(mask.sum())
    if mass <= 0:
        return np.zeros((len(maps), canvas, canvas), np.float32)
    h, w = mask.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    cx, cy = float((mask * xs).sum() / mass), float((mask * ys).sum() / mass)
    half = SPAN * np.sqrt(mass) / 2  # the canvas covers SPAN x sqrt(area) pixels on each axis
    u = (np.arange(canvas, dtype=np.float32) + 0.5) / canvas * 2 - 1
    gx = (cx + u * half) / w * 2 - 1  # grid_sample's [-1, 1] pixel-edge coordinates
    gy = (cy + u * half) / h * 2 - 1
    grid = torch.from_numpy(np.stack(np.meshgrid(gx, gy, indexing="xy"), -1)[None].astype(np.float32))
    t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[None]
    return torch.nn.functional.grid_sample(t, grid, mode="bilinear", padding_mode="zeros",
                                           align_corners=False)[0].numpy()


@lru_cache(maxsize=8)
def templates(view: str | None, size: int = 32) -> dict[str, np.ndarray]:
    """Per shape, the normalised maps [T, 2, canvas, canvas] (`_largest`) of a small and a big solid at the
    origin, rendered exactly (supersample 2, as the training data) from every camera of the view class:
    elevations 0-60 (60-90 overhead, 0-90 without a view) in 10 degree steps, azimuths of the class in
    15 degree steps (30 overhead or without a view). The azimuth matters although the round solids are
    symmetric: the light is fixed in the world, so their shading turns with the camera."""
    import torch

    from .render import render_views
    from .scenes import Obj, Scene

    elevations = {"overhead": range(65, 91, 5), None: range(0, 91, 10)}.get(view, range(0, 61, 10))
    azimuths = {"front": range(-45, 46, 15), "back": range(135, 226, 15),
                "side": [*range(45, 136, 15), *range(225, 316, 15)]}.get(view, range(0, 360, 30))
    az = [float(a) for a in azimuths for _ in elevations]
    el = [float(e) for _ in azimuths for e in elevations]
    out = {}
    for shape in SHAPES:
        imgs = torch.cat([render_views(Scene((Obj("red", shape, s, half=h),)), az, el, size, supersample=2)
                          for s, h in (("small", 0.22), ("big", 0.35))])
        out[shape] = np.stack([normalise(_largest(im.permute(1, 2, 0).numpy(), 0)[1]) for im in imgs])
    return out


def classify(maps: np.ndarray, view: str | None) -> tuple[str, float]:
    """(shape, score) of the template that best matches one segment's maps (`_largest`): the soft IoU of
    the masks less SHADE_WEIGHT x the shading maps' mean absolute difference over the masks' union."""
    x = normalise(maps)
    best, best_score = SHAPES[0], -np.inf
    for shape, tpl in templates(view, maps.shape[-1]).items():
        union = np.maximum(np.maximum(tpl[:, 0], x[0]).sum((1, 2)), 1e-6)
        iou = np.minimum(tpl[:, 0], x[0]).sum((1, 2)) / union
        shade = np.abs(tpl[:, 1] - x[1]).sum((1, 2)) / union
        score = float((iou - SHADE_WEIGHT * shade).max())
        if score > best_score:
            best, best_score = shape, score
    return best, best_score


def segment(img: np.ndarray, colour: str, view: str | None, labels=None, cover=None,
            min_area: int | None = None) -> Segment:
    """The largest connected segment of one colour, its shape and centroid (shape None if absent)."""
    if labels is None:
        labels, cover = label_pixels(img)
    size = img.shape[0]
    min_area = min_area if min_area is not None else max(3, round(6 * (size / 32) ** 2))
    mask, maps = _largest(img, _NAMES.index(colour), labels)
    area = int(mask.sum())
    if area < min_area:
        return Segment(colour, None, 0.0, area, 0.5, 0.5)
    shape, iou = classify(maps, view)
    ys, xs = np.nonzero(mask)
    return Segment(colour, shape, iou, area, float(xs.mean() + 0.5) / size, float(ys.mean() + 0.5) / size)


def _largest(img: np.ndarray, k: int, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Colour k's largest connected segment: (boolean mask, maps [2,H,W]). Map 0 is the soft mask: the
    pixels' coverage by colour k on the segment and on the one-pixel ring around it (at most 0.5 on the
    ring: it was labelled backdrop), so anti-aliased outlines count as much as they show. Map 1 is the
    shading (the Lambert factor, 0.6-1, centred and scaled to about +-1) times the soft mask: a cube's
    flat faces are evenly lit with a step between them, a cylinder's side is a smooth ramp."""
    if labels is None:
        labels = label_pixels(img)[0]
    lab, n = ndimage.label(labels == k)
    if n == 0:
        return np.zeros(labels.shape, bool), np.zeros((2, *labels.shape), np.float32)
    mask = lab == 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))
    p = img.reshape(-1, 3).astype(np.float32)
    basis = np.stack([_BG, _PALETTE[k]], -1)
    coef = (p @ np.linalg.pinv(basis).T).reshape(*labels.shape, 2)
    alpha = np.clip(1.0 - coef[..., 0], 0.0, 1.0)
    lit = np.clip(coef[..., 1] / np.maximum(alpha, 0.05), 0.5, 1.1)
    ring = ndimage.binary_dilation(mask) & (labels == -1)
    soft = np.where(mask, alpha, np.where(ring, np.minimum(alpha, 0.5), 0.0))
    return mask, np.stack([soft, soft * (lit - 0.8) / 0.2]).astype(np.float32)


def _relation(rel: str, view: str | None, a: Segment, b: Segment) -> bool | None:
    """Whether the image shows the relation; None when this view cannot tell."""
    if rel in ("left of", "right of") and view in ("front", "back"):
        left = (a.cx < b.cx - RELATION_MARGIN) if view == "front" else (a.cx > b.cx + RELATION_MARGIN)
        right = (a.cx > b.cx + RELATION_MARGIN) if view == "front" else (a.cx < b.cx - RELATION_MARGIN)
        return left if rel == "left of" else right
    if rel == "on top of" and view in ("front", "side", "back"):
        return a.cy < b.cy - RELATION_MARGIN
    return None


def read_view(img, caption: str) -> Reading:
    """Read one image (HxWx3 or 3xHxW, values in [0,1]) against a view-suffixed 3D world caption."""
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 3 and img.shape[0] == 3 and img.shape[-1] != 3:
        img = img.transpose(1, 2, 0)
    img = np.clip(img, 0.0, 1.0)
    text, view = split_view(caption)
    parsed = parse_caption(text)
    labels, cover = label_pixels(img)
    segs = [segment(img, o.colour, view, labels, cover) for o in parsed.objects]
    facts: dict[str, bool] = {}
    for i, (o, s) in enumerate(zip(parsed.objects, segs)):
        facts[f"object{i}.colour"] = s.shape is not None
        if view == "overhead":  # from above every round solid is a disk
            facts[f"object{i}.shape"] = s.shape is not None and (s.shape in ROUND) == (o.shape in ROUND)
        else:
            facts[f"object{i}.shape"] = s.shape == o.shape
    if parsed.relation is not None and len(segs) == 2:
        held = _relation(parsed.relation, view, *segs)
        if held is not None:
            facts["relation"] = segs[0].shape is not None and segs[1].shape is not None and held
    stated = {_NAMES.index(o.colour) for o in parsed.objects}
    min_area = max(3, round(6 * (img.shape[0] / 32) ** 2))
    others = [k for k in range(len(_NAMES) + 1) if k not in stated and (labels == k).sum() >= min_area]
    facts["count"] = not others
    return Reading(facts, view, tuple(segs))
