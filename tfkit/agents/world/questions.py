"""Multi-hop questions over a knowledge base, and Bamboogle-style CSV loading.

A question composes k relations starting from one entity, innermost first:
"what is the country of the birthplace of Belo Tram ?" = located_in(born_in(Belo Tram)).
Dev and test questions start from held-out entities, and a question is kept only if searching
for its full text does not already return the document holding the answer.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tfkit.agents.search import Snippet
from tfkit.agents.world.kb import RELATIONS, KnowledgeBase
from tfkit.errors import TfkitError

__all__ = ["Question", "FAMILIES", "make_questions", "split_entities", "load_csv_questions"]

# A family is the type of the entity a question starts from.
FAMILIES = ("person", "city", "company", "country")


@dataclass(frozen=True)
class Question:
    qid: str
    question: str
    answers: tuple[str, ...]  # the reference and its aliases
    hops: int = 0
    family: str = ""


def split_entities(kb: KnowledgeBase, seed: int, held_out: float = 0.3
                   ) -> tuple[set[str], set[str]]:
    """(training start entities, held-out start entities), `held_out` of each type."""
    rng = random.Random(seed + 7)
    train, held = set(), set()
    for names in kb.entities.values():
        names = sorted(names)
        rng.shuffle(names)
        cut = max(1, round(len(names) * held_out))
        held.update(names[:cut])
        train.update(names[cut:])
    return train, held


def _chain(kb: KnowledgeBase, rng: random.Random, start: str, hops: int) -> list[str] | None:
    seen, node, rels = {start}, start, []
    for _ in range(hops):
        options = [r for r in kb.relations_from(node) if kb.facts[(node, r)] not in seen]
        if not options:
            return None
        r = rng.choice(sorted(options))
        rels.append(r)
        node = kb.facts[(node, r)]
        seen.add(node)
    return rels


def _text(start: str, rels: Sequence[str]) -> str:
    nouns = [RELATIONS[r][2] for r in reversed(rels)]
    return "what is the " + " of the ".join(nouns) + f" of {start} ?"


def make_questions(kb: KnowledgeBase, starts: set[str], n: int, hops: Sequence[int], seed: int,
                   prefix: str, search: Callable[[str, int], list[Snippet]] | None = None
                   ) -> list[Question]:
    """`n` distinct questions from `starts`, families balanced, hop counts drawn from `hops`."""
    rng = random.Random(seed)
    by_family = {f: sorted(e for e in starts if kb.type_of(e) == f) for f in FAMILIES}
    out: list[Question] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 200 * n:
            raise TfkitError(f"could only build {len(out)} of {n} {prefix} questions; "
                             "enlarge the world")
        family = FAMILIES[attempts % len(FAMILIES)]  # rotate; saturated families skip
        if not by_family[family]:
            family = rng.choice([f for f in FAMILIES if by_family[f]])
        start = rng.choice(by_family[family])
        rels = _chain(kb, rng, start, rng.choice(list(hops)))
        if rels is None:
            continue
        text = _text(start, rels)
        node = start
        for r in rels:
            last_subject, node = node, kb.facts[(node, r)]
        if text in seen:
            continue
        if search is not None:  # no single search may return the answer's fact
            hits = search(text, 3)
            if any(h.source == f"fact:{rels[-1]}:{last_subject}" for h in hits):
                continue
        seen.add(text)
        out.append(Question(f"{prefix}-{len(out)}", text, (node,), len(rels), family))
    return out


def load_csv_questions(path: str | Path, prefix: str = "csv") -> list[Question]:
    """Bamboogle / BamTwoogle-style CSV with `question,answer` columns (answer aliases split
    on `|`; header names in any case, other columns ignored, blank rows skipped; UTF-8, with
    or without a byte-order mark). Raises TfkitError naming the file (and line) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise TfkitError(f"question file {path} does not exist (or is not a file)")
    try:  # utf-8-sig: spreadsheet exports start with a byte-order mark
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            cols = {c.lower().strip(): c for c in reader.fieldnames or []}
            for name in ("question", "answer"):  # DictReader keeps only the last of them
                count = [(c or "").lower().strip() for c in reader.fieldnames or []].count(name)
                if count > 1:
                    raise TfkitError(f"{path} has {count} {name!r} columns; keep one (answer "
                                     "aliases go in one cell, split by '|')")
            if "question" not in cols or "answer" not in cols:
                raise TfkitError(f"{path} needs 'question' and 'answer' columns, has "
                                 f"{reader.fieldnames}")
            rows = [(reader.line_num, r[cols["question"]], r[cols["answer"]]) for r in reader]
    except UnicodeDecodeError as e:
        raise TfkitError(f"{path} is not UTF-8 text ({e}); save it as UTF-8 CSV") from None
    questions = []
    for i, (line, q, ans) in enumerate(rows):
        if not (q or "").strip():
            continue
        aliases = tuple(a.strip() for a in (ans or "").split("|") if a.strip())
        if not aliases:
            raise TfkitError(f"{path} line {line}: question {q.strip()[:60]!r} has no answer")
        questions.append(Question(f"{prefix}-{i}", q.strip(), aliases))
    if not questions:
        raise TfkitError(f"{path} has no questions (only a header or blank rows)")
    return questions
