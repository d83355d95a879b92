"""Trainers of the embedded world's models; each is a script with the same typed options as before.

    python -m rewardsds.world.train.clip        # the world CLIP (the CLIP reward; its text tower conditions the prior)
    python -m rewardsds.world.train.prior       # the world prior (a pixel-space diffusers U-Net)
    python -m rewardsds.world.train.aesthetic   # the world aesthetic reward

`scripts/train_world.sh` runs the exact stages the shipped weights came from. The trainers import the
world runtime (`world.scenes`, `world.metrics`, `world.paths`, ...); nothing in the runtime imports them.
`common` holds what the three share: `TrainConfig`, checkpoints, schedules, records, and `WorldSpec`, the
world the CLIP and prior trainers read (this 2D world, `common.WORLD`, unless a config subclass sets
another: `rewardsds.world3d.train`).
"""
