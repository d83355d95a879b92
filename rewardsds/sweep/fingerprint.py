"""Fingerprints of the local weight folders a run loads, so that a sweep never reuses runs made with
other weights.

A run's config names its prior and reward by spec ("world", "world-clip", a folder, a hub id). A
retrained world prior or a folder overwritten in place keeps the same spec, so the spec alone would
let a rerun of the sweep adopt images made by the old model. The config hash therefore also covers
the *content* of every local folder the specs point at. Hub ids are left as they are: the id (and
the revision the hub serves) is their identity, and hashing them would mean downloading them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..rewards.factory import local_weights as reward_folders  # the reward spec's parser knows its weights

# What changes a model's outputs: its weights and its configs (tokenizer files included).
_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".json", ".txt", ".model")


def folder_digest(path: Path) -> str:
    """SHA-256 over the relative names and contents of the model files under ``path`` (a file: its
    own content). Training records and logs beside the weights are not model files and do not count."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and p.suffix in _SUFFIXES and p.name != "training_record.json")
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def prior_folder(spec: str) -> Path | None:
    """The local folder a --prior spec loads, or None for a hub id."""
    from ..worlds import WORLD_PRIORS

    if spec in WORLD_PRIORS:  # 'world', 'world3d'
        return WORLD_PRIORS[spec].prior_dir()
    p = Path(spec).expanduser()
    return p if p.exists() else None


def weights_fingerprint(prior: str, reward: str | None) -> str:
    """One short digest over the prior's and the reward's local folders ('' when none is local)."""
    folders = [f for f in [prior_folder(prior), *(reward_folders(reward) if reward else [])] if f is not None]
    if not folders:
        return ""
    h = hashlib.sha256()
    for f in folders:
        h.update(folder_digest(f).encode())
    return h.hexdigest()[:16]
