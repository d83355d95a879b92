"""The 3D world judge's reading of what `gen3d` made: a radiance field or a Gaussian set.

`judge.judge_field` counts a voxel as occupied when the field's density exceeds a threshold in the
field's own units. The two representations have different units, so each gets its own threshold:

* `RadianceField`: sigma is a volume density (per scene unit), the renderer's alpha over a step
  delta being ``1 - exp(-sigma * delta)``. A voxel is occupied when light crossing `OPAQUE_LENGTH` of
  such matter (a quarter of the thinnest world object, 0.1 scene units) would be at least half stopped:
  ``sigma > ln 2 / OPAQUE_LENGTH`` (6.9). Any world object made of it is then opaque across its width
  (>= 94%), as the renders the prior learned from are, while a fog that needs the whole box to stop
  light is not an object. The criterion is the matter's, not the judge's grid: the same field reads the
  same at any `resolution`. (An earlier rule, opaque across one voxel of the 64^3 grid, asked for
  sigma > 21.8: distilled objects that render fully opaque, sigma 7-10 over 8 render samples, read empty.)
* `GaussianModel`: `field_fn`'s density is a sum of opacity-weighted, peak-normalised Gaussians, i.e.
  already an opacity-like quantity in [0, ~1]; occupied means above 0.5 (the judge's default).

Everything heavy (torch, the representations) is imported when called, never at import.
"""

from __future__ import annotations

import math

from .judge import Verdict, judge_field

JUDGE_RESOLUTION = 64
"""voxels per side of the judged grid (the judge's own default; at 64 a small world cone, ~0.017
units^3, is ~530 voxels, enough for the shape fits)"""
GAUSSIAN_THRESHOLD = 0.5
HALF_OPACITY = 0.5
OPAQUE_LENGTH = 0.1
"""scene units over which occupied matter stops half the light (smallest world object: 0.4 wide)"""


def density_threshold(model) -> float:
    """The density above which a voxel of `model` counts as occupied (see the module docstring)."""
    from rewardsds.representations.gaussians import GaussianModel

    if isinstance(model, GaussianModel):
        return GAUSSIAN_THRESHOLD
    # 1 - exp(-sigma * OPAQUE_LENGTH) > HALF_OPACITY  <=>  sigma > -ln(1 - HALF_OPACITY) / OPAQUE_LENGTH
    return -math.log(1.0 - HALF_OPACITY) / OPAQUE_LENGTH


def judge_model(model, prompt: str, resolution: int = JUDGE_RESOLUTION) -> Verdict:
    """The judge's verdict on a finished `RadianceField` or `GaussianModel` (on any device) against a 3D
    world caption; ValueError when the caption names no 3D world object."""
    import torch

    from rewardsds.representations.gaussians import GaussianModel

    call = model.field_fn if isinstance(model, GaussianModel) else model
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")

    def density_colour(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sigma, rgb = call(points.to(device))
        return sigma.cpu(), rgb.cpu()

    with torch.no_grad():
        return judge_field(density_colour, prompt, model.bound, resolution,
                           density_threshold=density_threshold(model))


def verdict_summary(model, prompt: str, resolution: int = JUDGE_RESOLUTION) -> dict | None:
    """`summary.json`'s ``judge3d`` entry: facts, accuracy, all_correct, duplicated, and the occupancy
    threshold and resolution used; None when the prompt is not a 3D world caption (nothing to judge)."""
    try:
        v = judge_model(model, prompt, resolution)
    except ValueError:
        return None
    return {"facts": dict(v.facts), "accuracy": round(v.accuracy, 4), "all_correct": v.all_correct,
            "duplicated": list(v.duplicated), "density_threshold": round(density_threshold(model), 4),
            "resolution": resolution}
