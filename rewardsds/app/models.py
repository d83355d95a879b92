"""Models loaded once for the app's lifetime: an object the app owns (no module globals), handed to the
run functions as their loader, so a second run of the same prior and reward loads nothing."""

from __future__ import annotations

import threading
from typing import Any

import torch


class ModelCache:
    """Priors and rewards by (spec, device), with the loaders of the shared preamble
    (`commands.common.load_prior` / `load_reward_model`, which turn load failures into UserError).
    Keeps at most `max_priors` priors: Stable Diffusion takes GBs, so switching priors drops the old one."""

    def __init__(self, max_priors: int = 1, max_rewards: int = 3) -> None:
        self.max_priors, self.max_rewards = max_priors, max_rewards
        self._priors: dict[tuple[str, str], tuple[Any, str]] = {}
        self._rewards: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def load_prior(self, spec: str, device: torch.device) -> tuple[Any, str]:
        """(prior, the path or hub id it came from), as `commands.common.load_prior`."""
        from ..commands.common import load_prior

        key = (spec, str(device))
        with self._lock:
            if key not in self._priors:
                _evict(self._priors, self.max_priors - 1)
                self._priors[key] = load_prior(spec, device)
            return self._priors[key]

    def load_reward(self, spec: str, device: torch.device):
        from ..commands.common import load_reward_model

        key = (spec, str(device))
        with self._lock:
            if key not in self._rewards:
                _evict(self._rewards, self.max_rewards - 1)
                self._rewards[key] = load_reward_model(spec, device)
            return self._rewards[key]

    def loaded(self) -> list[str]:
        with self._lock:
            return [f"prior {s} ({d})" for s, d in self._priors] + [f"reward {s} ({d})" for s, d in self._rewards]

    def clear(self) -> None:
        with self._lock:
            self._priors.clear()
            self._rewards.clear()


def _evict(cache: dict, keep: int) -> None:
    while len(cache) > max(0, keep):
        cache.pop(next(iter(cache)))
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
