"""Small shims over library versions and the environment, kept in one place so the rest of the code
reads plainly: optional imports (`require`), transformers version differences (`features`), loader
chatter (`quiet_loading`) and where weights can come from (`check_weights`: a local path, the Hugging
Face cache, or the hub - decided in seconds, before a loader starts its own retry loop).

Nothing heavy is imported at module level: this module is imported by `rewardsds` itself.
"""

from __future__ import annotations

import importlib
import os
import time
from pathlib import Path
from types import ModuleType

import torch


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import the optional ``module`` (e.g. ``"open_clip"``) that ``feature`` needs, or raise an
    ImportError naming the pip extra that installs it (``pip install 'rewardsds[EXTRA]'``).

    A package that is installed but fails to import (a broken or incompatible dependency) is reported
    as such, with the original error, instead of as missing."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing = isinstance(e, ModuleNotFoundError) and e.name is not None and (
            module == e.name or module.startswith(e.name + "."))
        if missing:
            raise ImportError(f"{feature} needs the optional package {module!r}: "
                              f"pip install 'rewardsds[{extra}]'") from e
        raise ImportError(f"{feature} needs {module!r}, which is installed but failed to import ({e}); "
                          f"reinstall it with pip install 'rewardsds[{extra}]'") from e


def features(out) -> torch.Tensor:
    """`CLIPModel.get_{image,text}_features` returns a tensor in transformers 4.x and a model output
    whose `pooler_output` holds the projected features in 5.x."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def quiet_loading() -> None:
    """Silence diffusers/transformers loading chatter (per-file progress bars, hints): a CLI that
    prints its own progress should not interleave it with theirs. Errors still surface."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()


# --- where weights come from -----------------------------------------------------------------------

class WeightsUnavailableError(OSError):
    """Weights named by a path or hub id exist neither on disk nor in the cache, and cannot be downloaded."""


_TRUE = {"1", "ON", "YES", "TRUE"}
_PROBE_TTL_S = 60.0
_probes: dict[tuple[str, int], tuple[float, bool]] = {}


def hub_offline() -> bool:
    """True when the environment switches the Hugging Face hub off (``HF_HUB_OFFLINE``, or the older
    ``TRANSFORMERS_OFFLINE``), read now rather than when huggingface_hub was imported."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    if value is not None:
        return value.strip().upper() in _TRUE
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _hub_address() -> tuple[str, str, int]:
    """(hub host, host to connect to, port): the hub endpoint (``HF_ENDPOINT``), or the proxy in front
    of it when the environment names one for its scheme."""
    import urllib.parse
    import urllib.request

    from huggingface_hub import constants

    url = urllib.parse.urlsplit(constants.ENDPOINT)
    host = url.hostname or "huggingface.co"
    target, port = host, url.port or (443 if url.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(url.scheme) or urllib.request.getproxies().get("all")
    if proxy and not urllib.request.proxy_bypass(host):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if p.hostname:
            target, port = p.hostname, p.port or (443 if p.scheme == "https" else 80)
    return host, target, port


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether a TCP connection to the hub (or its proxy) opens within ``timeout`` seconds, name
    resolution included; the answer is remembered for a minute."""
    import socket
    import threading

    _, target, port = _hub_address()
    key = (target, port)
    hit = _probes.get(key)
    if hit is not None and time.monotonic() - hit[0] < _PROBE_TTL_S:
        return hit[1]
    result: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection(key, timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    # a thread bounds the whole probe: getaddrinfo ignores socket timeouts and may hang on a bad resolver
    probe = threading.Thread(target=connect, daemon=True, name="rewardsds-hub-probe")
    probe.start()
    probe.join(timeout)
    ok = bool(result) and result[0]
    _probes[key] = (time.monotonic(), ok)
    return ok


def _is_repo_id(spec: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(spec)
    except HFValidationError:
        return False
    return True


def check_weights(spec: str, what: str, filename: str = "config.json",
                  local_files_only: bool | None = None) -> bool:
    """Decide, within seconds, where ``spec`` (a local path or a hub id) can be loaded from, before a
    loader spends half a minute retrying an unreachable hub; return the ``local_files_only`` to pass on.

    * an existing path: True (nothing to download);
    * a hub id whose ``filename`` is in the local Hugging Face cache: True when downloads are off
      (``local_files_only``, ``HF_HUB_OFFLINE``) or the hub does not answer a 2-second probe, else False;
    * a hub id not in the cache: False when the hub answers;
    * anything else raises `WeightsUnavailableError` saying which of the three sources failed.
    ``what`` names the weights in messages (``"prior"``, ``"reward model"``)."""
    spec = str(spec)
    if Path(spec).exists():
        return True
    if not _is_repo_id(spec):
        raise WeightsUnavailableError(f"{what} {spec!r} is not a local folder or file (no such path) and "
                                      "not a Hugging Face hub id (namespace/name)")
    from huggingface_hub import constants, try_to_load_from_cache

    cached = isinstance(try_to_load_from_cache(spec, filename), str)
    if local_files_only:
        if cached:
            return True
        why = "downloads are off (local_files_only=True)"
    elif hub_offline():
        if cached:
            return True
        why = "the hub is offline (HF_HUB_OFFLINE is set)"
    elif hub_reachable():
        return False
    elif cached:
        return True
    else:
        host, target, port = _hub_address()
        via = "" if target == host else f" through the proxy {target}:{port}"
        why = f"the hub ({host}{via}) is unreachable (offline)"
    raise WeightsUnavailableError(
        f"{what} {spec!r} is not a local folder, not in the Hugging Face cache ({constants.HF_HUB_CACHE}), "
        f"and {why}: download it first (hf download {spec}) or pass a local folder")
