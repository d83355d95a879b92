"""Rewards: one interface (`Reward`); model adapters are imported lazily from their own modules."""

from .base import CallableReward, MixReward, Reward

__all__ = ["CallableReward", "MixReward", "Reward"]
