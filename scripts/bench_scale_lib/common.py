"""Constants every part of the benchmark shares: the prompt, the GiB unit, the presets compared (N, S, K) and
the parts that ``--skip`` can leave out."""

from __future__ import annotations

PROMPT = "a photo of a corgi"
GIB = 1024**3

# presets compared (N, S); K: the fraction of steps that are reward steps
SETTINGS = {"default": (4, 1, 1.0), "paper-small": (2, 1, 0.1), "paper-full": (10, 15, 1.0)}
PARTS = ("paper-small", "official", "official-3d", "vsd", "aesthetic", "generate")
