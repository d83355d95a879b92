"""Do the V views of one multi-view sample show one scene? The 2D readings of the views, compared.

The multi-view prior's gate (`evaluate_mv`) needs a model-free test that 4 images are views of ONE 3D scene
under their cameras. Each view is read by the 2D reader (`read.read_view`) against the sample's caption with
the view's suffix (from its camera, `scenes.view_suffix`), and the readings must agree:

1. objects: every stated object (its colour) is seen in at least V - 1 views. One view may miss it: an
   object can hide behind the other from one side, never from two opposite cameras;
2. colours: no view shows a colour the caption does not state (the reader's ``count`` fact);
3. shapes: per object, at most one of the views that see it reads another shape than the rest (a view of a
   partly hidden object may be misread);
4. left/right: for two objects, the screen order of their centroids flips between opposite views (azimuths
   180 degrees apart: the camera's right axis is reversed), wherever both views see both objects farther
   apart than `read.RELATION_MARGIN`. Views 90 degrees apart constrain nothing (the order depends on where
   the objects stand in depth), so only opposite pairs are asked.

On exact renders of random scenes (`data.sample_view_sets`, 32 px) about 97% of the samples agree (the
misses: a partly hidden object's shape misread in two views); views of different scenes almost never do.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from .read import RELATION_MARGIN, Reading, read_view
from .scenes import view_suffix


@dataclass(frozen=True)
class Agreement:
    objects: bool
    colours: bool
    shapes: bool
    left_right: bool
    readings: tuple[Reading, ...]

    @property
    def agrees(self) -> bool:
        return self.objects and self.colours and self.shapes and self.left_right


def orbit_angles(c2w: torch.Tensor) -> tuple[list[float], list[float]]:
    """(azimuths, elevations) in degrees of cameras c2w [V,4,4] (`render.cameras` convention: azimuth 0 on +z,
    90 on +x; elevation above the xz-plane), from their centres."""
    eye = c2w[:, :3, 3].double()
    az = torch.rad2deg(torch.atan2(eye[:, 0], eye[:, 2]))
    el = torch.rad2deg(torch.asin((eye[:, 1] / eye.norm(dim=-1)).clamp(-1, 1)))
    return az.tolist(), el.tolist()


def _opposite_pairs(az: list[float]) -> list[tuple[int, int]]:
    """Pairs of views whose azimuths differ by 180 degrees (within 1)."""
    return [(i, j) for i in range(len(az)) for j in range(i + 1, len(az))
            if abs((az[i] - az[j]) % 360.0 - 180.0) < 1.0]


def views_agree(images, caption: str, c2w: torch.Tensor) -> Agreement:
    """Compare the readings of V views (images [V,3,H,W] or [V,H,W,3] in [0,1]) of one sample of `caption`
    (view-free) seen from cameras c2w [V,4,4] (module docstring)."""
    images = np.asarray(images, dtype=np.float32)
    az, el = orbit_angles(torch.as_tensor(c2w))
    if len(images) != len(az):
        raise ValueError(f"{len(images)} images but {len(az)} cameras")
    readings = tuple(read_view(img, caption + view_suffix(a, e)) for img, a, e in zip(images, az, el))
    v, k = len(readings), len(readings[0].segments)
    seen = [[r.segments[i].shape is not None for r in readings] for i in range(k)]
    objects = k > 0 and all(sum(s) >= v - 1 for s in seen)
    colours = all(r.facts["count"] for r in readings)
    shapes = True
    for i in range(k):
        read = Counter(r.segments[i].shape for r in readings if r.segments[i].shape is not None)
        if read and sum(read.values()) - read.most_common(1)[0][1] > 1:
            shapes = False
    left_right = True
    if k == 2:
        for i, j in _opposite_pairs(az):
            segs = readings[i].segments + readings[j].segments
            if any(s.shape is None for s in segs):
                continue
            di = readings[i].segments[0].cx - readings[i].segments[1].cx
            dj = readings[j].segments[0].cx - readings[j].segments[1].cx
            if abs(di) > RELATION_MARGIN and abs(dj) > RELATION_MARGIN and np.sign(di) == np.sign(dj):
                left_right = False
    return Agreement(objects, colours, shapes, left_right, readings)
