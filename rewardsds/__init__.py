"""rewardsds: reward-aligned score distillation (RewardSDS, RewardVSD, RewardDDS, SDS-Bridge).

`import rewardsds` stays light: no diffusers/transformers until a model is loaded.

    from rewardsds.priors.diffusers_prior import DiffusersPrior
    from rewardsds.rewards.factory import load_reward
    from rewardsds.losses import GuidanceConfig, build_guidance
    from rewardsds.loop import LoopConfig, run
"""

__version__ = "0.1.0"
