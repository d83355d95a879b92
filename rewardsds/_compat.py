"""Small shims over library versions (kept in one place so the rest of the code reads plainly)."""

from __future__ import annotations

import torch


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
