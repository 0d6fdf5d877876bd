"""A seeded knowledge base: entities of four types linked by functional relations."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["KnowledgeBase", "RELATIONS", "build_knowledge_base"]

# relation -> (subject type, object type, the noun used in questions and summaries)
RELATIONS: dict[str, tuple[str, str, str]] = {
    "born_in": ("person", "city", "birthplace"),
    "works_for": ("person", "company", "employer"),
    "located_in": ("city", "country", "country"),
    "mayor": ("city", "person", "mayor"),
    "founded_by": ("company", "person", "founder"),
    "based_in": ("company", "city", "headquarters"),
    "capital": ("country", "city", "capital"),
}

# Name parts: held-out entities are new combinations of the same words, so a word-level
# tokenizer has seen every word while the entities themselves are new.
_FIRST = ["Belo", "Anka", "Toma", "Rida", "Sefo", "Luma", "Piet", "Oska", "Wren", "Dara",
          "Ilse", "Kofi", "Nadi", "Maro", "Evin", "Juno", "Tavi", "Orla", "Zeno", "Hana"]
_LAST = ["Tram", "Kast", "Vell", "Orbe", "Daum", "Fisk", "Grau", "Holt", "Ibsa", "Jorn",
         "Lisk", "Mott", "Nerd", "Pask", "Quen", "Rost", "Sorb", "Tull", "Urdo", "Veck"]
_CITY_A = ["Kesh", "Port", "Ume", "Dor", "Fal", "Gis", "Hob", "Ixa", "Lom", "Nar", "Ost", "Pel"]
_CITY_B = ["Vale", "Ford", "Mere", "Haven", "Crag", "Moor", "Wick", "Dune"]
_COUNTRY = ["Aldor", "Brev", "Cimar", "Dusk", "Eton", "Fenra", "Galo", "Hesp", "Istr", "Jalu",
            "Korv", "Lenn"]
_COMPANY_A = ["Vora", "Zent", "Quil", "Marn", "Tesk", "Bolt", "Cyra", "Drex", "Elko", "Fyn"]
_COMPANY_B = ["Works", "Labs", "Group", "Systems", "Motors", "Foods"]


@dataclass
class KnowledgeBase:
    """Entities by type and the facts `(subject, relation) -> object`."""

    entities: dict[str, list[str]]
    facts: dict[tuple[str, str], str] = field(default_factory=dict)

    def type_of(self, name: str) -> str:
        for kind, names in self.entities.items():
            if name in names:
                return kind
        raise KeyError(name)

    def relations_from(self, name: str) -> list[str]:
        return [r for (s, r) in self.facts if s == name]


def _names(rng: random.Random, a: list[str], b: list[str], n: int, sep: str = " ") -> list[str]:
    pool = [f"{x}{sep}{y}" for x in a for y in b]
    rng.shuffle(pool)
    if n > len(pool):
        raise ValueError(f"asked for {n} names but only {len(pool)} combinations exist")
    return pool[:n]


def build_knowledge_base(seed: int, people: int = 120, cities: int = 40, countries: int = 8,
                         companies: int = 30) -> KnowledgeBase:
    """A random world; every relation is a total function on its subject type."""
    rng = random.Random(seed)
    ents = {"person": _names(rng, _FIRST, _LAST, people),
            "city": _names(rng, _CITY_A, _CITY_B, cities),
            "country": rng.sample(_COUNTRY, countries),
            "company": _names(rng, _COMPANY_A, _COMPANY_B, companies)}
    kb = KnowledgeBase(ents)
    for c in ents["city"]:
        kb.facts[(c, "located_in")] = rng.choice(ents["country"])
        kb.facts[(c, "mayor")] = rng.choice(ents["person"])
    for country in ents["country"]:
        own = [c for c in ents["city"] if kb.facts[(c, "located_in")] == country]
        kb.facts[(country, "capital")] = rng.choice(own or ents["city"])
    for p in ents["person"]:
        kb.facts[(p, "born_in")] = rng.choice(ents["city"])
        kb.facts[(p, "works_for")] = rng.choice(ents["company"])
    for co in ents["company"]:
        kb.facts[(co, "founded_by")] = rng.choice(ents["person"])
        kb.facts[(co, "based_in")] = rng.choice(ents["city"])
    return kb
