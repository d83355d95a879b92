"""The view reader as RewardSDS's reward: the oracle control of the 3D table.

    python benchmarks/table3d.py --methods reward-sds --seeds 0 --out out/t3_oracle \\
        --reward "benchmarks.oracle3d:facts_read_right + 0.001*world3d-clip"

Why: on the 3D table RewardSDS's margin over SDS sits inside its CI at the defaults. RewardSDS needs two
things, a reward that ranks the N candidates right and candidates that differ in what is judged; an oracle
reward separates them. If RewardSDS with the oracle beats SDS, the 3D CLIP's ranking is what holds it back
(its gate: 0.78 against 0.90); if it does not, the candidates of one step do not differ enough in what the
judge reads for any ranking to help.

The oracle reads each candidate view (the prior's x0 estimate, 32x32) with `world3d.read.read_view`, the
prior gate's 2D reader, against that view's caption (gen3d's reward prompts carry the view suffix on the 3D
world priors, `--reward-view-words`) and scores the share of its facts read right; the loop averages a
candidate's views as it does for any reward. It asks only what one view shows (left/right on front and back
views, on top of on level views, never in front of / behind), so it is an oracle of the view reader, not of
judge3d. Its scores are ties in steps of a fact; 0.001 x world3d-clip (CLIPScore x100, so 0.02-0.04) breaks
them without ever outweighing a fact, as the 2D oracle of `benchmarks/relations` does.

A control, not a reward to ship: it reads the answer from the world's own renderer, which no real prior has.
"""

from __future__ import annotations

import numpy as np


def facts_read_right(images, prompts):
    """Share of the facts `read_view` reads right in each image ([B,3,H,W] in [0,1]) against its caption."""
    import torch

    from rewardsds.world3d.read import read_view

    arr = images.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    return torch.tensor([read_view(np.ascontiguousarray(im), p).accuracy for im, p in zip(arr, prompts)],
                        dtype=torch.float32)
