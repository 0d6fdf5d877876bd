"""Search tools for the agent: BM25 over a document collection, or a user's search function.

A search tool is any callable `search(query: str, k: int) -> list[Snippet]`. `CachedSearch`
serves repeated queries from memory (the agent counts them against its budget all the same).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from tfkit.errors import TfkitError

__all__ = ["Document", "Snippet", "BM25Search", "FunctionSearch", "CachedSearch", "words"]

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (the unit of BM25 and of the offline checks)."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str


@dataclass(frozen=True)
class Snippet:
    """One search result: where it came from and the text shown to the agent."""

    source: str
    text: str


def _document(d: Document | str, i: int) -> Document:
    if isinstance(d, str):
        return Document(f"doc:{i}", d)
    if not isinstance(d, Document):
        raise TypeError(f"BM25Search: document {i} must be a Document or a str, got "
                        f"{type(d).__name__}: {d!r:.80}")
    return d


def _text(value, doc_id) -> str:
    if not isinstance(value, str):
        raise TypeError(f"BM25Search: document {doc_id!r} must map to a str, got "
                        f"{type(value).__name__}: {value!r:.80}")
    return value


class BM25Search:
    """Okapi BM25 ranking over `documents`.

    Args:
        documents: the collection: `Document`s, plain strings (ids `doc:0`, `doc:1`, ...), or
            a mapping {doc_id: text}.
        k1: term-frequency saturation (1.5, the common default).
        b: length normalisation (0.75, the common default).

    Example:
        >>> s = BM25Search([Document("a", "the capital of Brev is Ume Vale .")])
        >>> s("capital of Brev", k=1)[0].text
        'the capital of Brev is Ume Vale .'
    """

    def __init__(self, documents: Sequence[Document | str] | Mapping[str, str], k1: float = 1.5,
                 b: float = 0.75):
        if isinstance(documents, (str, bytes)) or not documents:
            raise TfkitError("BM25Search needs a non-empty list of documents (Document or str)")
        if isinstance(documents, Mapping):  # {doc_id: text}, not its keys as the texts
            documents = [Document(str(k), _text(v, k)) for k, v in documents.items()]
        self.documents = [_document(d, i) for i, d in enumerate(documents)]
        self.k1 = k1
        self.b = b
        self._tf = [Counter(words(d.text)) for d in self.documents]
        self._len = [sum(c.values()) for c in self._tf]
        self._avg = sum(self._len) / len(self._len)
        df = Counter(w for c in self._tf for w in c)
        n = len(self.documents)
        self._idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}
        self._postings: dict[str, list[int]] = {}
        for i, c in enumerate(self._tf):
            for w in c:
                self._postings.setdefault(w, []).append(i)

    def scores(self, query: str) -> dict[int, float]:
        out: dict[int, float] = {}
        for w in set(words(query)):
            idf = self._idf.get(w)
            if idf is None:
                continue
            for i in self._postings[w]:
                f = self._tf[i][w]
                norm = f + self.k1 * (1 - self.b + self.b * self._len[i] / self._avg)
                out[i] = out.get(i, 0.0) + idf * f * (self.k1 + 1) / norm
        return out

    def __call__(self, query: str, k: int = 3) -> list[Snippet]:
        ranked = sorted(self.scores(query).items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [Snippet(self.documents[i].doc_id, self.documents[i].text) for i, _ in ranked]


class FunctionSearch:
    """Adapts a user's `fn(query) -> list[str | (source, text) | dict]` to the search interface.

    Results are taken best first; repeated and blank texts are skipped, so up to `k` distinct
    snippets are shown. A return value that is not a list of such results raises a TypeError.

    Example:
        >>> s = FunctionSearch(lambda q: [("web:1", "Paris is the capital of France.")])
        >>> s("capital of France")[0].source
        'web:1'
    """

    def __init__(self, fn: Callable[[str], Sequence]):
        self.fn = fn

    def __call__(self, query: str, k: int = 3) -> list[Snippet]:
        """The first `k` distinct results (a repeated or blank text would waste a link id)."""
        results = self.fn(query)
        if results is None or isinstance(results, (str, bytes, dict)) or not isinstance(
                results, Iterable):
            raise TypeError(f"FunctionSearch: the search function must return a list of "
                            f"results (an empty list for none), got {type(results).__name__} "
                            f"for query {query!r}")
        out, seen = [], set()
        for i, item in enumerate(results):
            if len(out) == k:
                break
            snippet = _snippet(item, i, query)
            if snippet.text.strip() and snippet.text not in seen:
                seen.add(snippet.text)
                out.append(snippet)
        return out


def _snippet(item, i: int, query: str) -> Snippet:
    """A str, `(source, text)` or `{"text": ..., "source": ...}` result as a Snippet."""
    source, text = f"result:{i}", None
    if isinstance(item, str):
        text = item
    elif isinstance(item, dict):
        source, text = item.get("source", source), item.get("text")
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        source, text = item
    if not isinstance(text, str):
        raise TypeError(f"FunctionSearch: result {i} for query {query!r} must be a str, a "
                        f"(source, text) pair or a dict with a str 'text', got "
                        f"{type(item).__name__}: {item!r:.80}")
    return Snippet(str(source), text)


class CachedSearch:
    """Serves repeated `(query, k)` lookups from memory; `hits` counts them."""

    def __init__(self, search: Callable[[str, int], list[Snippet]]):
        self.search = search
        self.cache: dict[tuple[str, int], list[Snippet]] = {}
        self.hits = 0

    def lookup(self, query: str, k: int = 3) -> tuple[list[Snippet], bool]:
        key = (" ".join(words(query)), k)
        if key in self.cache:
            self.hits += 1
            return self.cache[key], True
        result = self.search(query, k)
        if not isinstance(result, (list, tuple)) or not all(isinstance(s, Snippet)
                                                            for s in result):
            raise TypeError(f"the search tool must return a list of Snippet for "
                            f"search(query, k), got {result!r:.100} for query {query!r}: wrap "
                            "a function that returns strings (or (source, text) pairs) in "
                            "FunctionSearch(fn), which calls fn(query)")
        result = list(result)
        self.cache[key] = result
        return result, False

    def __call__(self, query: str, k: int = 3) -> list[Snippet]:
        return self.lookup(query, k)[0]
