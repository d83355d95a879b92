"""Errors that the CLI turns into one clear message and a non-zero exit (never a traceback)."""


class UserError(Exception):
    """Bad input or environment: the message says what is wrong and how to fix it."""


class RewardError(UserError, ValueError):
    """A reward that failed on the candidates mid-run (wrong shape, NaN scores, an exception inside a user
    callable): the run stops with the reward's own message; its last checkpoint is kept."""
