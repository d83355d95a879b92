"""Trainers of the 3D world's models: the 2D world's trainers run on the 3D world's `WorldSpec`.

    python -m rewardsds.world3d.train.clip    # the 3D world CLIP (view-invariant captions; the reward)
    python -m rewardsds.world3d.train.prior   # the view-aware prior (captions + ", side view", ...)
    python -m rewardsds.world3d.train.mvprior # the multi-view prior (4 views of a scene, their cameras)

Same options, checkpoints and records as `rewardsds.world.train` (whose code they run); only the data,
tokenizer, hard negatives, family name and default folders differ (`spec.WORLD3D`). The multi-view prior runs
the prior trainer's loop (`world.train.prior.train`) with its own hooks: 4-view batches, their cameras.
"""
