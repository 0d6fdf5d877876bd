"""A word-level tokenizer for small agent models trained from scratch.

Text is split into words and single punctuation marks (`\\w+|[^\\w\\s]`); `decode` joins tokens
with single spaces. Step outputs stay parseable because Python's parser ignores that spacing
(`Search ( query = " capital of Brev " )`). Unknown words fall back to characters.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = ["WordTokenizer"]

_TOKEN = re.compile(r"\w+|[^\w\s]")
SPECIALS = ["<pad>", "<unk>", "<eos>"]  # ids 0, 1, 2 (0 is DecoderLM's padding id)


class WordTokenizer:
    """Words and punctuation to ids; id 0 pads, 1 is unknown, 2 ends an output.

    Args:
        vocabulary: the token list; the first three entries must be `SPECIALS`.

    Example:
        >>> tok = WordTokenizer.fit(["Search(query=\\"capital of Brev\\")"])
        >>> tok.decode(tok.encode('Search(query="capital of Brev")'))
        'Search ( query = " capital of Brev " )'
    """

    pad_id, unk_id, eos_id = 0, 1, 2

    def __init__(self, vocabulary: Sequence[str]):
        if list(vocabulary[:3]) != SPECIALS:
            raise ValueError(f"the vocabulary must start with {SPECIALS}")
        self.vocabulary = list(vocabulary)
        self._ids = {t: i for i, t in enumerate(self.vocabulary)}

    @classmethod
    def fit(cls, texts: Iterable[str], min_count: int = 1) -> WordTokenizer:
        """Every token seen at least `min_count` times, plus printable ASCII characters."""
        counts = Counter(t for text in texts for t in _TOKEN.findall(text))
        chars = [chr(c) for c in range(33, 127)]
        vocab = SPECIALS + sorted({t for t, n in counts.items() if n >= min_count} | set(chars))
        return cls(vocab)

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str) -> list[int]:
        ids = []
        for tok in _TOKEN.findall(text):
            if tok in self._ids:
                ids.append(self._ids[tok])
            else:
                ids.extend(self._ids.get(c, self.unk_id) for c in tok)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i > self.eos_id:
                out.append(self.vocabulary[i])
        return " ".join(out)

    def to_json(self) -> str:
        return json.dumps(self.vocabulary)

    @classmethod
    def from_json(cls, text: str) -> WordTokenizer:
        return cls(json.loads(text))
