"""Evaluation of a finished sweep: per-run scores (`metrics`) and their statistics (`aggregate`).

    rewardsds eval out/sweep --metrics judge,world-clip,world-aesthetic --baseline sds
"""
