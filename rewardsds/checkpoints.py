"""The one place where state is saved and loaded: safetensors for tensors, JSON for the rest.

A checkpoint is any nested structure of dicts, lists, tuples, tensors, numpy arrays and JSON scalars
(an optimiser's ``state_dict()``, a ``torch.Generator`` state, a model's parameters, counters). It is
written as ONE ``.safetensors`` file: every tensor under a flat key, and the structure (with tensors
replaced by references) as JSON in the file's metadata. Loading therefore never unpickles anything:
a crafted file can carry wrong numbers, never code (pickle-based ``torch.load(weights_only=False)``
runs whatever the file tells it to).

    save_state(path, {"step": 10, "optimizer": opt.state_dict(), "generator": gen.get_state()},
               meta={"config_hash": "..."})
    state, meta = load_state(path)

Files in another format (a pickle ``.pt``, a truncated or foreign file) are refused with
`CheckpointError`, a ``ValueError`` whose message says what the file is and what to do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "rewardsds-state/1"
CHECKPOINT_NAME = "checkpoint.safetensors"  # a run folder's checkpoint (--resume reads it)
_MAGIC_KEY = "rewardsds_format"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, not ours, corrupt, or from another run."""


def _encode(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """Replace tensors by {"__t__": key} (collected into `tensors`); mark tuples, arrays and dicts
    whose keys are not all strings (an optimiser's per-parameter state is keyed by int)."""
    if isinstance(obj, torch.Tensor):
        key = prefix or "_"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__t__": key}
    if isinstance(obj, np.ndarray):
        key = prefix or "_"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj))
        return {"__np__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not any(k.startswith("__") for k in obj):
            return {k: _encode(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}
        return {"__d__": [[_key(k), _encode(v, tensors, f"{prefix}.{i}")] for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {"__tu__": [_encode(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint (at {prefix or 'top level'})")


def _key(k: Any) -> Any:
    if isinstance(k, (str, int, float, bool)) or k is None:
        return k
    raise TypeError(f"checkpoint dict keys must be str/int/float/bool, got {type(k).__name__}")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__t__" in obj:
        return tensors[obj["__t__"]]
    if "__np__" in obj:
        return tensors[obj["__np__"]].numpy()
    if "__tu__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tu__"])
    if "__d__" in obj:
        return {k: _decode(v, tensors) for k, v in obj["__d__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def save_state(path: str | os.PathLike, state: dict, meta: dict | None = None) -> Path:
    """Write `state` (see the module docstring) and a JSON-able `meta` atomically to `path`."""
    from safetensors.torch import save_file

    from .media import atomic_path

    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(state, tensors, "")
    # safetensors refuses tensors that share memory; a checkpoint wants independent copies anyway
    tensors = {k: v.clone() for k, v in tensors.items()}
    header = {_MAGIC_KEY: FORMAT, "state": json.dumps(skeleton), "meta": json.dumps(meta or {})}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return Path(path)


def load_state(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[dict, dict]:
    """(state, meta) of a file written by `save_state`. Never executes code from the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {e.strerror or e}") from e
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        if head[:2] == b"PK" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
            raise CheckpointError(f"{str(path)!r} is a pickle-based checkpoint (torch.save); it is not loaded "
                                  "because loading a pickle can run code. Start the run again without --resume") from e
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or truncated ({e}); delete it, or start "
                              "again without --resume") from e
    if header.get(_MAGIC_KEY) != FORMAT:
        raise CheckpointError(f"{str(path)!r} is a safetensors file but not a rewardsds checkpoint "
                              f"(format {header.get(_MAGIC_KEY)!r}, expected {FORMAT!r})")
    try:
        tensors = load_file(str(path), device=str(map_location))
        state = _decode(json.loads(header["state"]), tensors)
        meta = json.loads(header.get("meta", "{}"))
    except (SafetensorError, OSError, KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or truncated ({type(e).__name__}: {e}); "
                              "delete it, or start again without --resume") from e
    return state, meta


def restore_generator(generator: torch.Generator, state: torch.Tensor) -> None:
    """`generator.set_state` with a readable error for a state from another device or torch."""
    try:
        generator.set_state(state.to(torch.uint8).cpu())
    except (RuntimeError, TypeError) as e:
        raise CheckpointError(f"the checkpoint's random state does not fit this generator: {e}") from e
