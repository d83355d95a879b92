"""The 3D world as the shared trainers see it (`rewardsds.world.train.common.WorldSpec`).

Both the CLIP and the prior read view-suffixed captions ("a red cube left of a blue sphere, back view"),
as `gen3d` prompts them per camera, both from the same `world3d.data` batches. For the CLIP the suffix is
what makes relations learnable at all: the world's relations live in the scene frame, and one view
without its camera cannot tell "left of" seen from the front from "right of" seen from the back. A
caption's hard negatives keep its suffix (`WorldSpec.caption_suffix`), so they differ in a fact only.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from rewardsds.world.train.common import WorldSpec

from .. import data, negatives, paths, scenes, tokenizer

WORLD3D = WorldSpec(
    family=paths.WORLD3D_FAMILY, module="rewardsds.world3d.train",
    clip_data=partial(data.sample_batch, view_prompts=True),
    prior_data=partial(data.sample_batch, view_prompts=True),
    build_tokenizer=tokenizer.build_tokenizer, max_length=tokenizer.MAX_LENGTH,
    hard_negatives=negatives.hard_negatives, clip_accuracy=negatives.hard_negative_accuracy,
    clip_dir=paths.clip_dir, prior_dir=paths.prior_dir,
    swap_pairs=data.swap_pairs,
    caption_suffix=scenes.suffix_of,
)

WORLD3D_CAMERA = replace(
    WORLD3D, clip_data=partial(data.sample_batch, view_prompts=False, camera_frame=True),
    clip_accuracy=partial(negatives.hard_negative_accuracy, camera_frame=True), swap_pairs=None)
"""The 3D world for a CLIP that reads camera-frame captions (`scenes.camera_frame`): each relation named as
the image shows it ("left of" on the image's left, "in front of" nearer the camera), no view words. What the
view suffix asked the CLIP to learn (turn a scene-frame relation by the view, and guess which side a
", side view" shows) becomes exact geometry done for it: gen3d knows each view's camera. The prior keeps
`WORLD3D`'s view-suffixed captions. Position-swapped twins are not drawn in this frame (--swap-pairs 0)."""
