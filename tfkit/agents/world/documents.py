"""Renders knowledge-base facts into a document collection with paraphrases and distractors."""

from __future__ import annotations

import random

from tfkit.agents.search import Document
from tfkit.agents.world.kb import RELATIONS, KnowledgeBase

__all__ = ["render_documents", "PARAPHRASES"]

# Each fact is written in one of these forms ({s} subject, {o} object, {n} relation noun), so a
# summary has to read three word orders.
PARAPHRASES = [
    "the {n} of {s} is {o} .",
    "{o} is the {n} of {s} .",
    "{s} has {o} as {n} .",
]
# Distractors mention an entity without stating a relation fact.
_DISTRACTORS = [
    "{s} once visited {o} .",
    "{s} wrote a report about {o} .",
    "a {n} question about {s} mentioned {o} .",
]


def render_documents(kb: KnowledgeBase, seed: int, distractors_per_entity: int = 1
                     ) -> list[Document]:
    """One document per fact plus `distractors_per_entity` noise documents per entity."""
    rng = random.Random(seed)
    docs = []
    for (s, r), o in sorted(kb.facts.items()):
        text = rng.choice(PARAPHRASES).format(s=s, o=o, n=RELATIONS[r][2])
        docs.append(Document(doc_id=f"fact:{r}:{s}", text=text))
    everyone = [n for names in kb.entities.values() for n in names]
    nouns = [n for _, _, n in RELATIONS.values()]
    for s in everyone:
        for k in range(distractors_per_entity):
            text = rng.choice(_DISTRACTORS).format(s=s, o=rng.choice(everyone),
                                                   n=rng.choice(nouns))
            docs.append(Document(doc_id=f"noise:{k}:{s}", text=text))
    rng.shuffle(docs)
    return docs
