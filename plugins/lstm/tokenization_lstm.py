"""Character- and word-level tokenizers, built from a corpus with the ``tokenizers`` library.

Both are plain ``PreTrainedTokenizerFast`` objects saved as ``tokenizer.json`` (no pickle, no custom class), so
``AutoTokenizer.from_pretrained(folder)`` loads them with stock transformers. Decoding concatenates the tokens, so
``decode(encode(text)) == text`` for any text made of known tokens; unknown characters or words become ``<unk>``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

__all__ = ["LEVELS", "NEWLINE", "PAD_TOKEN", "UNK_TOKEN", "build_tokenizer", "tokenizer_from_vocab"]

PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"  # ids 0 and 1
NEWLINE = "\n"  # always in the vocabulary: rows are joined with it, and samples start after it
# What one token is. char: one Unicode code point. word: a run of letters/digits/underscores or one punctuation
# mark, each with its leading space if any (as GPT-2 does), a newline, or a run of other whitespace (indentation).
LEVELS = {
    "char": r"[\s\S]",
    "word": r" ?[\p{L}\p{N}_]+| ?[^\s\p{L}\p{N}_]|\n|[^\S\n]+",
}


def _pre_tokenizer(level: str) -> pre_tokenizers.PreTokenizer:
    if level not in LEVELS:
        raise ValueError(f"tokenizer level must be one of {', '.join(LEVELS)}, not {level!r}")
    return pre_tokenizers.Split(Regex(LEVELS[level]), behavior="isolated")


def build_tokenizer(rows: Iterable[str], level: str, vocab_size: int) -> PreTrainedTokenizerFast:
    """A tokenizer for the text ``"\\n".join(rows)``: its ``vocab_size`` most frequent tokens (special tokens
    included) plus the newline; rarer ones map to ``<unk>``. Ties are broken by the token's text, so the same
    corpus always gives the same ids."""
    if vocab_size < 3:
        raise ValueError(f"vocab_size must be >= 3 (<pad>, <unk> and the newline), not {vocab_size}")
    pre = _pre_tokenizer(level)
    counts: Counter[str] = Counter()
    n_rows = 0
    for row in rows:
        n_rows += 1
        if level == "char":
            counts.update(row)  # one code point per token, exactly what the pre-tokenizer yields
        else:
            counts.update(piece for piece, _ in pre.pre_tokenize_str(row))
    counts[NEWLINE] += max(0, n_rows - 1)
    counts.pop(PAD_TOKEN, None)
    counts.pop(UNK_TOKEN, None)
    if not counts:
        raise ValueError("the text is empty: there is nothing to build a vocabulary from")
    ranked = sorted((t for t in counts if t != NEWLINE), key=lambda t: (-counts[t], t))
    kept = [NEWLINE, *ranked[: vocab_size - 3]]
    if level == "char":
        kept.sort()  # readable ids: characters in code-point order
    return tokenizer_from_vocab({PAD_TOKEN: 0, UNK_TOKEN: 1, **{token: i + 2 for i, token in enumerate(kept)}}, pre)


def tokenizer_from_vocab(vocab: dict[str, int], pre: pre_tokenizers.PreTokenizer) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over ``vocab`` (ids 0 and 1 are <pad> and <unk>) splitting text with ``pre``."""
    tokenizer = Tokenizer(WordLevel(vocab, unk_token=UNK_TOKEN))
    tokenizer.pre_tokenizer = pre
    tokenizer.decoder = decoders.Fuse()  # tokens carry their own spaces: decoding is concatenation
    tokenizer.add_special_tokens([PAD_TOKEN, UNK_TOKEN])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        padding_side="left",  # a recurrent model reads left to right: batched prompts must end at the same place
        clean_up_tokenization_spaces=False,  # would delete spaces before punctuation and break the round trip
        model_input_names=["input_ids", "attention_mask"],
    )
