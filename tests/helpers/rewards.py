"""A user-callable reward for CLI tests (`--reward tests.helpers.rewards:redness`), from `tests/_builders.py`."""

from .._builders import redness

__all__ = ["redness"]
