"""The 3D world's word-level tokenizer: the 2D world's builder over the 3D vocabulary.

Same specials and ids layout (`rewardsds.world.tokenizer`), so the same loaders read it; the
vocabulary holds the view words and the comma of DreamFusion's suffix (", front view"), and the
length covers the longest view-suffixed caption.
"""

from __future__ import annotations

from .scenes import vocabulary

MAX_LENGTH = 24
"""tokens per caption, BOS/EOS included: the longest caption ("a big purple cylinder to the left of a
small orange sphere , overhead view") is 17 tokens; the rest is slack for future wordings"""


def build_tokenizer(max_length: int = MAX_LENGTH):
    """A fresh PreTrainedTokenizerFast over the 3D world vocabulary."""
    from rewardsds.world.tokenizer import build_tokenizer as build

    return build(max_length, vocabulary())
