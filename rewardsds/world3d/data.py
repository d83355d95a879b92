"""Training batches of the 3D world: random scenes, each seen from one random orbit camera.

The 3D counterpart of `rewardsds.world.scenes.sample_batch`, with the same return type, so the 2D
trainers read it unchanged (`rewardsds.world3d.train`). Two caption variants:

* ``view_prompts=True`` appends DreamFusion's view suffix of the drawn camera (", side view"): the
  view-aware prior learns what each view looks like, as `gen3d` prompts it per camera;
* ``view_prompts=False`` leaves captions view-free: the 3D CLIP reward must score a scene the same
  from every side.

`sample_view_sets` feeds the multi-view prior: each scene from one set of 4 cameras around one elevation,
view-free captions, and the cameras' c2w.

Speed (one thread, 32 px, supersample 2): the rays of all B cameras are made in one batched call and
each scene shades its own view's rays (the renderer takes one scene per call), about 2.5-4 ms a view,
so a batch of 64 costs about 0.2 s.
"""

from __future__ import annotations

import random

import numpy as np


def sample_views(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n (azimuth in [0, 360), elevation in `render.ELEVATION_RANGE` = [0, 60]) pairs in degrees, from
    `seed` alone. Elevation never exceeds 60, so the prior never sees ", overhead view": gen3d's
    cameras should stay at or below 60 degrees."""
    import torch

    from .render import random_views

    az, el = random_views(n, torch.Generator().manual_seed(seed))
    return az.numpy(), el.numpy()


def sample_batch(seed: int, batch: int, image_size: int = 32, split: str = "train", view_prompts: bool = True,
                 supersample: int = 2, two_objects: float | None = None,
                 camera_frame: bool = False) -> tuple[np.ndarray, list[str], list]:
    """A deterministic batch: images (B,3,H,W) float32 in [0,1], random-wording captions (view-suffixed
    when `view_prompts`), scenes (`world3d.scenes.Scene`).

    The view suffix is appended last, after the caption's own random wording, so the two variants
    draw the same scenes, views and wordings for one seed. `supersample` anti-aliases (2: 4 rays a pixel,
    softer edges, as a volume render has). ``two_objects``: the share of two-object scenes (None: half, drawn
    as `sample_scene` draws them; the trainers' --two-objects). ``camera_frame``: captions and the returned
    scenes are those of `scenes.camera_frame` for each image's camera (relations as the screen shows them,
    no view suffix; `view_prompts` is then ignored), while the images render the scenes as drawn."""
    import torch

    from rewardsds.render.cameras import generate_rays, orbit_cameras
    from rewardsds.world import grammar

    from .render import FOV, RADIUS, shade_rays
    from .scenes import camera_frame as to_camera_frame
    from .scenes import sample_scene, view_suffix

    if batch < 1 or image_size < 1 or supersample < 1:
        raise ValueError(f"batch, image_size and supersample must be >= 1, got {batch}, {image_size}, {supersample}")
    rng = random.Random(seed)
    scenes = grammar.draw_scenes(sample_scene, rng, batch, split, two_objects)
    az, el = sample_views(batch, seed)
    drawn = scenes
    if camera_frame:
        scenes = [to_camera_frame(sc, float(a)) for sc, a in zip(drawn, az)]
    captions = [sc.caption(rng) for sc in scenes]
    if view_prompts and not camera_frame:
        captions = [c + view_suffix(float(a), float(e)) for c, a, e in zip(captions, az, el)]
    n = image_size * supersample
    with torch.no_grad():
        origins, dirs = generate_rays(orbit_cameras(torch.from_numpy(el), torch.from_numpy(az), RADIUS, FOV), n, n)
        rgb = torch.stack([shade_rays(sc, origins[b].reshape(-1, 3), dirs[b].reshape(-1, 3))
                           for b, sc in enumerate(drawn)])
        images = rgb.view(batch, n, n, 3).permute(0, 3, 1, 2)
        if supersample > 1:
            images = torch.nn.functional.avg_pool2d(images, supersample)
    return images.clamp(0.0, 1.0).contiguous().numpy(), captions, scenes


_VIEW_AZIMUTHS = {"front": ((-44.0, 44.0),), "back": ((136.0, 224.0),), "side": ((46.0, 134.0), (226.0, 314.0))}
"""azimuth intervals (degrees) strictly inside each view class of `render.cameras.view_label`"""


def swap_pairs(images: np.ndarray, captions: list[str], scenes: list, fraction: float, rng: random.Random,
               image_size: int) -> None:
    """Replace, in place, the tail of a batch by position-swapped twins of its horizontal-relation scenes
    (the 2D world's `--swap-pairs`), so that the batch holds both scenes of a pair and each caption is the
    other image's hardest negative. A twin is seen from a random camera of its source's view class and
    carries the same view suffix, so the two captions differ in the relation alone."""
    from .negatives import INVERSE_RELATION, swapped
    from .render import ELEVATION_RANGE, render_views
    from .scenes import suffix_of, view_of

    batch = len(scenes)
    rel = [i for i, sc in enumerate(scenes) if sc.relation in INVERSE_RELATION]
    for j, i in enumerate(rel[:int(fraction * batch)]):
        dst = batch - 1 - j
        if dst <= i:
            break
        tail = suffix_of(captions[i])
        view = view_of(captions[i]) or rng.choice(tuple(_VIEW_AZIMUTHS))
        lo, hi = rng.choice(_VIEW_AZIMUTHS[view])
        az, el = rng.uniform(lo, hi) % 360.0, rng.uniform(*ELEVATION_RANGE)
        twin = swapped(scenes[i])
        scenes[dst] = twin
        captions[dst] = twin.caption(rng) + tail
        images[dst] = render_views(twin, [az], [el], image_size, supersample=2)[0].numpy()


def sample_view_sets(seed: int, batch: int, image_size: int = 32, views: int = 4, split: str = "train",
                     supersample: int = 2):
    """A deterministic batch for the multi-view prior: `batch` scenes, each rendered from ONE camera set of
    `views` views, as MVDream trains (`render.cameras.sample_camera_sets`: azimuths a + k 360/V with a uniform
    in [0, 360), one elevation uniform in `render.ELEVATION_RANGE`, the renderer's distance and fov).

    Returns (images float32 [B*V,3,H,W] in [0,1], view-free captions [B] (one per scene: the cameras tell
    the views), scenes [B], c2w float32 tensor [B*V,4,4]); row b*V + v is view v of scene b, the row order
    of `priors.multiview`."""
    import torch

    from rewardsds.render.cameras import CameraRanges, generate_rays, sample_camera_sets

    from .render import AZIMUTH_RANGE, ELEVATION_RANGE, FOV, RADIUS, shade_rays
    from .scenes import sample_scene

    if min(batch, image_size, views, supersample) < 1:
        raise ValueError(f"batch, image_size, views and supersample must be >= 1, got {batch}, {image_size}, "
                         f"{views}, {supersample}")
    rng = random.Random(seed)
    scenes = [sample_scene(rng, split=split) for _ in range(batch)]
    captions = [sc.caption(rng) for sc in scenes]
    ranges = CameraRanges(elevation=ELEVATION_RANGE, azimuth=AZIMUTH_RANGE, distance=(RADIUS, RADIUS), fov=(FOV, FOV))
    cams = sample_camera_sets(batch, views, ranges, torch.Generator().manual_seed(seed))
    n = image_size * supersample
    with torch.no_grad():
        origins, dirs = generate_rays(cams, n, n)
        rgb = torch.stack([shade_rays(scenes[r // views], origins[r].reshape(-1, 3), dirs[r].reshape(-1, 3))
                           for r in range(batch * views)])
        images = rgb.view(batch * views, n, n, 3).permute(0, 3, 1, 2)
        if supersample > 1:
            images = torch.nn.functional.avg_pool2d(images, supersample)
    return images.clamp(0.0, 1.0).contiguous().numpy(), captions, scenes, cams.c2w
