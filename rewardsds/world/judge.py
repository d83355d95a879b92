"""The world's exact judge: reads an image and a prompt and says which stated facts hold.

It is model-free (the world's counterpart of the paper's LLM grader) and independent of every
trained model, so it can grade any of them. Pipeline:

1. parse the prompt with the world grammar into objects (colour, shape, optional size) + relation;
2. unmix every pixel as ``p = bg + a (c_k - bg)`` for each palette colour ``c_k``; the colour with the
   smallest residual labels the pixel if its coverage ``a`` > 0.5 (so anti-aliased edges take the
   colour of their object, not the nearest palette entry); pixels far from every line are "other";
3. connected components per label (scipy.ndimage), tiny ones dropped as noise;
4. each component's shape = the shape whose ideal mask in the component's bounding box has the best
   IoU (the same ``shape_mask`` the renderer uses); size from the bounding box;
5. stated objects are matched to components by the assignment that satisfies most facts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import grammar
from .grammar import Facts, Parsed, StatedObject  # noqa: F401  (re-exported: callers import them from here)
from .scenes import BACKGROUND, COLOURS, SHAPES, SIZE_SPLIT, shape_mask

_COLOUR_NAMES = tuple(COLOURS)
_PALETTE = np.array([COLOURS[c] for c in _COLOUR_NAMES], dtype=np.float32)
_BG = np.array(BACKGROUND, dtype=np.float32)
_OBJ_RE = grammar.object_pattern(_COLOUR_NAMES, SHAPES)
_REL_WORDS = (("left", "left of"), ("right", "right of"), ("above", "above"), ("over", "above"),
              ("below", "below"), ("under", "below"), ("beneath", "below"), ("and", "and"),
              ("with", "and"))
MIN_SHAPE_IOU = 0.5


@dataclass(frozen=True)
class Component:
    colour: str  # a palette name or "other"
    shape: str | None  # None when no shape fits with IoU >= MIN_SHAPE_IOU
    size: str
    cx: float
    cy: float
    area: int


@dataclass(frozen=True)
class Verdict(Facts):
    facts: dict[str, bool]
    components: tuple[Component, ...]


def parse_prompt(prompt: str) -> Parsed:
    """Parse a world caption. Raises ValueError when it names no world object."""
    parsed = grammar.parse(prompt, _OBJ_RE, _REL_WORDS)
    if parsed is None:
        raise ValueError(f"the prompt {prompt!r} names no world object (colour + shape)")
    return parsed


def label_pixels(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel labels for an HxWx3 image in [0,1]: -1 background, k palette index, K = other.

    Returns (labels, alpha) where alpha (H,W,K) is each palette colour's unmixing coefficient.
    """
    d = img.astype(np.float32) - _BG  # H,W,3
    e = _PALETTE - _BG  # K,3
    alpha = np.clip(np.einsum("hwc,kc->hwk", d, e) / (e * e).sum(-1), 0.0, 1.2)
    resid = np.linalg.norm(d[:, :, None, :] - alpha[..., None] * e, axis=-1)  # H,W,K
    k = resid.argmin(-1)
    a = np.take_along_axis(alpha, k[..., None], -1)[..., 0]
    r = np.take_along_axis(resid, k[..., None], -1)[..., 0]
    labels = np.where(a > 0.5, k, -1)
    # far from every colour line and from the background: an object of no world colour
    other = (r > 0.25) & (np.linalg.norm(d, axis=-1) > 0.25)
    labels = np.where(other, len(_COLOUR_NAMES), labels)
    return labels, alpha


_FILL = {"circle": np.pi / 4, "square": 0.81, "triangle": 0.5, "diamond": 0.5}
# centroid of each shape relative to its box centre, in units of the half side (triangle: v = 1/3)
_CENTROID_V = {"circle": 0.0, "square": 0.0, "triangle": 1.0 / 3.0, "diamond": 0.0}


def _fit_shape(cov: np.ndarray) -> tuple[str | None, float, float]:
    """Fit each shape to a soft coverage map (HxW in [0,1], one object) by moment matching.

    The coverage mass gives the area, hence the side for each shape's fill ratio; the centroid
    gives the centre. The shape whose ideal anti-aliased mask has the best soft IoU wins.
    Returns (shape or None, IoU, fitted side in pixels).
    """
    h, w = cov.shape
    mass = float(cov.sum())
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    mx, my = float((cov * xs).sum() / mass), float((cov * ys).sum() / mass)
    ss = 4
    fine = (np.arange(h * ss, dtype=np.float32) + 0.5) / ss, (np.arange(w * ss, dtype=np.float32) + 0.5) / ss
    fy, fx = np.meshgrid(*fine, indexing="ij")
    best, best_iou, best_side = None, 0.0, 0.0
    for shape in SHAPES:
        side = float(np.sqrt(mass / _FILL[shape]))
        half = side / 2
        cy = my - _CENTROID_V[shape] * half
        ideal = shape_mask(shape, (fx - mx) / half, (fy - cy) / half).reshape(h, ss, w, ss).mean((1, 3))
        iou = float(np.minimum(ideal, cov).sum() / max(np.maximum(ideal, cov).sum(), 1e-6))
        if iou > best_iou:
            best, best_iou, best_side = shape, iou, side
    return (best if best_iou >= MIN_SHAPE_IOU else None), best_iou, best_side


def find_components(img: np.ndarray) -> list[Component]:
    """Objects in an HxWx3 image in [0,1]."""
    size = img.shape[0]
    labels, alpha = label_pixels(img)
    min_area = max(4, round(12 * (size / 32) ** 2))
    comps = []
    names = _COLOUR_NAMES + ("other",)
    for k, name in enumerate(names):
        lab, n = ndimage.label(labels == k)
        for i in range(1, n + 1):
            mask = lab == i
            area = int(mask.sum())
            if area < min_area:
                continue
            ys, xs = np.nonzero(mask)
            if name == "other":
                shape, side = None, max(np.ptp(ys), np.ptp(xs)) + 1.0
            else:
                # edge pixels under half coverage were labelled background: take them back, with
                # their partial coverage of this colour, from a one-pixel ring around the component
                ring = ndimage.binary_dilation(mask) & (labels == -1)
                a_k = alpha[..., k]
                cov = np.where(mask, np.clip(a_k, 0.0, 1.0), np.where(ring, np.clip(a_k, 0.0, 0.5), 0.0))
                shape, _, side = _fit_shape(cov.astype(np.float32))
            comps.append(Component(name, shape, "big" if side / size > SIZE_SPLIT else "small",
                                   float(xs.mean() + 0.5) / size, float(ys.mean() + 0.5) / size, area))
    return comps


def _relation_holds(rel: str, a: Component, b: Component) -> bool:
    margin = 0.08  # centres must be clearly apart along the stated axis
    if rel == "left of":
        return b.cx - a.cx > margin
    if rel == "right of":
        return a.cx - b.cx > margin
    if rel == "above":
        return b.cy - a.cy > margin
    if rel == "below":
        return a.cy - b.cy > margin
    return True  # "and": only presence, checked by the object facts


def judge(img: np.ndarray, prompt: str) -> Verdict:
    """Judge an image (HxWx3 or 3xHxW, values in [0,1]) against a world prompt."""
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 3 and img.shape[0] == 3 and img.shape[-1] != 3:
        img = img.transpose(1, 2, 0)
    parsed = parse_prompt(prompt)
    comps = find_components(np.clip(img, 0.0, 1.0))
    return Verdict(grammar.best_facts(parsed, comps, _relation_holds), tuple(comps))
