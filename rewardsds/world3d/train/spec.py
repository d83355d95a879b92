"""The 3D world as the shared trainers see it (`rewardsds.world.train.common.WorldSpec`).

The CLIP reads view-free captions (a reward must score a scene alike from every side); the prior
reads view-suffixed ones (what `gen3d` prompts per camera). Both from the same `world3d.data` batches.
"""

from __future__ import annotations

from functools import partial

from rewardsds.world.train.common import WorldSpec

from .. import data, negatives, paths, tokenizer

WORLD3D = WorldSpec(
    family=paths.WORLD3D_FAMILY, module="rewardsds.world3d.train",
    clip_data=partial(data.sample_batch, view_prompts=False),
    prior_data=partial(data.sample_batch, view_prompts=True),
    build_tokenizer=tokenizer.build_tokenizer, max_length=tokenizer.MAX_LENGTH,
    hard_negatives=negatives.hard_negatives, clip_accuracy=negatives.hard_negative_accuracy,
    clip_dir=paths.clip_dir, prior_dir=paths.prior_dir,
    swap_pairs=None,  # no position-swapped twins yet: --swap-pairs must stay 0
)
