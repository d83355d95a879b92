"""Errors that the CLI turns into one clear message and a non-zero exit (never a traceback)."""


class UserError(Exception):
    """Bad input or environment: the message says what is wrong and how to fix it."""
