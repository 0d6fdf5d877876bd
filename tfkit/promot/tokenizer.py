"""Tokenizers for the in-context harness: a word-level one, and an adapter for keras-nlp's.

The harness only needs `encode(text) -> list[int]`, `decode(ids) -> str`, `pad_id` and
`describe()` (a JSON description for the saved model's meta).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from tfkit.errors import TfkitError

__all__ = ["Tokenizer", "WordTokenizer", "KerasNLPTokenizer", "TokenizerError"]

PAD, UNK = "<pad>", "<unk>"


class TokenizerError(TfkitError, ValueError):
    """A tokenizer is misconfigured (e.g. duplicate vocabulary words)."""


class Tokenizer(Protocol):
    pad_id: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def describe(self) -> dict: ...


class WordTokenizer:
    """Splits on whitespace; id 0 is padding, id 1 unknown, then `vocabulary` in order.

    Args:
        vocabulary: the words (without the two special tokens), no duplicates.

    Example:
        >>> tok = WordTokenizer(["a", "b", "|"])
        >>> tok.encode("a b | c")
        [2, 3, 4, 1]
        >>> tok.decode([2, 3, 0])
        'a b'
    """

    def __init__(self, vocabulary: Sequence[str]):
        words = [PAD, UNK, *vocabulary]
        if len(set(words)) != len(words):
            dupes = sorted({w for w in words if words.count(w) > 1})
            raise TokenizerError(f"vocabulary has duplicate or reserved words: {dupes}")
        self.vocabulary = list(vocabulary)
        self._words = words
        self._ids = {w: i for i, w in enumerate(words)}
        self.pad_id = 0
        self.unk_id = 1

    @property
    def vocabulary_size(self) -> int:
        return len(self._words)

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(w, self.unk_id) for w in text.split()]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self._words[int(i)] for i in ids if int(i) != self.pad_id)

    def describe(self) -> dict:
        return {"type": "word", "split": "whitespace", "pad_id": self.pad_id,
                "unk_id": self.unk_id, "vocabulary": self._words}


class KerasNLPTokenizer:
    """Adapts a keras-nlp tokenizer (e.g. `GPT2Tokenizer.from_preset(local_dir)`).

    Answers are encoded after a leading space so that BPE pieces match how they appear inside
    an in-context sequence.

    Args:
        tokenizer: a `keras_nlp.tokenizers.Tokenizer`.
        pad_id: the id used for padding (GPT-2 has none; its end-of-text id is the usual pick).
    """

    def __init__(self, tokenizer: Any, pad_id: int | None = None):
        self.tokenizer = tokenizer
        if pad_id is None:
            pad_id = getattr(tokenizer, "pad_token_id", None)
            pad_id = getattr(tokenizer, "end_token_id", 0) if pad_id is None else pad_id
        self.pad_id = int(pad_id)

    @property
    def vocabulary_size(self) -> int:
        return int(self.tokenizer.vocabulary_size())

    def encode(self, text: str) -> list[int]:
        return [int(i) for i in self.tokenizer.tokenize(text).numpy().tolist()]

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids if int(i) != self.pad_id]
        out = self.tokenizer.detokenize(ids) if ids else ""
        return out.numpy().decode("utf-8") if hasattr(out, "numpy") else str(out)

    def describe(self) -> dict:
        return {"type": type(self.tokenizer).__name__, "pad_id": self.pad_id,
                "vocabulary_size": self.vocabulary_size}
