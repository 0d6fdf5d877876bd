"""One call that builds the whole experiment world from a seed (or from a user's files)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from tfkit.agents.search import BM25Search, CachedSearch, Document
from tfkit.agents.world.documents import render_documents
from tfkit.agents.world.kb import build_knowledge_base
from tfkit.agents.world.questions import load_csv_questions, make_questions, split_entities
from tfkit.errors import TfkitError

__all__ = ["World", "build_world", "load_documents"]


@dataclass
class World:
    documents: list[Document]
    search: CachedSearch
    train: list[dict]  # ReST question set (answers are never used for training)
    dev: list[dict]  # 2-hop, held-out entities
    test: list[dict]  # 2-4 hops, held-out entities (or the user's CSV questions)
    test_search: CachedSearch  # the world's search, or BM25 over the user's collection
    test_documents: list[Document] = dataclasses.field(default_factory=list)  # the user's
    # collection when `documents` is given (its words belong in a tokenizer's vocabulary)


def load_documents(path: str | Path) -> list[Document]:
    """A user's collection: one document per non-empty line of a text file."""
    path = Path(path)
    if not path.is_file():
        raise TfkitError(f"document file {path} does not exist (or is not a file)")
    try:  # utf-8-sig: no byte-order mark in the first document; lines end at \n, \r\n or
        # \r only (str.splitlines also splits at \f, U+0085 and U+2028, inside a paragraph)
        with path.open(encoding="utf-8-sig") as f:
            lines = [ln.strip() for ln in f.read().split("\n")]
    except UnicodeDecodeError as e:
        raise TfkitError(f"{path} is not UTF-8 text ({e})") from None
    docs = [Document(f"{path.name}:{i}", ln) for i, ln in enumerate(lines) if ln]
    if not docs:
        raise TfkitError(f"document file {path} has no documents (one per non-empty line)")
    return docs


def build_world(seed: int, *, people: int, cities: int, countries: int, companies: int,
                train: int, dev: int, test: int, questions_csv: str | None = None,
                documents: str | None = None, train_hops: tuple[int, ...] = (2, 3)) -> World:
    """The generated world; with `questions_csv` (+ `documents`) the test set is the user's
    questions answered over the user's collection (the generated world still trains).
    Training questions have `train_hops` hops; dev has 2, test 2-4."""
    if documents and not questions_csv:
        raise TfkitError("documents needs questions_csv (the questions about them)")
    # the user's files first: a bad one is reported before the world is generated
    user_q = load_csv_questions(questions_csv) if questions_csv else None
    test_docs = load_documents(documents) if documents else []
    kb = build_knowledge_base(seed, people, cities, countries, companies)
    docs = render_documents(kb, seed)
    search = CachedSearch(BM25Search(docs))
    train_starts, held = split_entities(kb, seed)
    as_dicts = lambda qs: [dataclasses.asdict(q) for q in qs]
    train_q = as_dicts(make_questions(kb, train_starts, train, train_hops, seed + 1, "train",
                                      search))
    dev_q = as_dicts(make_questions(kb, held, dev, (2,), seed + 2, "dev", search))
    test_q = as_dicts(make_questions(kb, held, test, (2, 3, 4), seed + 3, "test", search))
    test_search = CachedSearch(BM25Search(test_docs)) if test_docs else search
    if user_q is not None:
        test_q = as_dicts(user_q)
    return World(docs, search, train_q, dev_q, test_q, test_search, test_docs)
