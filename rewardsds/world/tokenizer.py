"""The world's word-level tokenizer, saved in the standard Hugging Face format.

Built with the `tokenizers` library (WordLevel model, lower-casing, whitespace split, BOS/EOS
template) and wrapped in `PreTrainedTokenizerFast`, so `AutoTokenizer.from_pretrained(dir)` loads
it exactly like a Stable Diffusion `tokenizer/` folder.
"""

from __future__ import annotations

from collections.abc import Iterable

from .scenes import vocabulary

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
# EOS is not id 2: transformers' CLIP text model treats eos_token_id == 2 as a legacy config and
# pools at argmax(input_ids) instead of at the EOS token.
SPECIALS = (PAD, UNK, BOS, EOS)
MAX_LENGTH = 16


def build_tokenizer(max_length: int = MAX_LENGTH, words: Iterable[str] | None = None):
    """A fresh PreTrainedTokenizerFast over the world vocabulary (specials first, then words).

    `words` replaces the 2D world's vocabulary (the 3D world's tokenizer is this one over its own words)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + tuple(vocabulary() if words is None else words))}
    tok = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=max_length,
        padding_side="right",
    )
