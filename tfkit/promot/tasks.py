"""Generated text tasks with distinct formats, built so that in-context learning is real.

Every task draws a hidden per-episode state (random label words, a random word mapping, a random
operation, a random position) that is only visible through the in-context examples, or a global
rule/fact the model has to learn in pretraining. `make_world(seed)` draws every word pool from a
seed, so all data is offline and reproducible.

Two tasks are held out of pretraining and used as fine-tuning targets: `entail` (True/False,
the RTE role) and `translate` (a fixed word dictionary, the En-Fr role).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["World", "Task", "make_world", "make_tasks", "PRETRAIN_TASKS", "TARGET_TASKS",
           "SEPARATOR"]

SEPARATOR = "|"  # ends every answer; generation stops here
METRICS = ("accuracy", "exact_match", "bleu")
PRETRAIN_TASKS = ("label_map", "sentiment", "fact_qa", "word_map", "extract", "arithmetic",
                  "sequence", "count")
TARGET_TASKS = ("entail", "translate")
_MARKERS = ("item class review verdict question where is ? located english french text keyword "
            "compute plus equals sequence output count in total premise hypothesis truth True "
            "False translate into positive negative").split()
_DIGITS = [str(d) for d in range(10)]


@dataclass(frozen=True)
class World:
    """The word pools and global facts every task draws from (one per seed)."""

    nouns: tuple[str, ...]       # generic items (inputs of most tasks)
    foreign: tuple[str, ...]     # target-side words of the two translation tasks
    label_words: tuple[str, ...]  # per-episode label words of `label_map`
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    places: tuple[str, ...]      # answers of the fact look-up task
    animals: tuple[str, ...]     # the two categories of `label_map`
    tools: tuple[str, ...]
    facts: dict[str, str]        # entity -> place (global knowledge)
    dictionary: dict[str, str]   # noun -> foreign word (held-out `translate` task)

    def vocabulary(self) -> list[str]:
        """Every word any task can produce, in a fixed order (for a word tokenizer)."""
        pools = (self.nouns, self.foreign, self.label_words, self.positive, self.negative,
                 self.places, self.animals, self.tools)
        return [*_MARKERS, *_DIGITS, SEPARATOR, *(w for pool in pools for w in pool)]


def make_world(seed: int, nouns: int = 40, foreign: int = 40) -> World:
    """Draws unique pseudo-words (consonant-vowel syllables) for every pool from `seed`."""
    rng = np.random.default_rng(seed)
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    sizes = {"nouns": nouns, "foreign": foreign, "label_words": 10, "positive": 8,
             "negative": 8, "places": 8, "animals": 10, "tools": 10}
    words = set()
    while len(words) < sum(sizes.values()):
        n = 2 if len(words) % 3 else 3  # a mix of two- and three-syllable words
        words.add("".join(rng.choice(syllables, size=n)))
    words = list(rng.permutation(sorted(words)))
    pools, start = {}, 0
    for name, size in sizes.items():
        pools[name] = tuple(str(w) for w in words[start:start + size])
        start += size
    entities = pools["nouns"][: nouns // 2]
    facts = {e: str(rng.choice(pools["places"])) for e in entities}
    source = pools["nouns"][nouns // 2:]  # translated nouns differ from the fact entities
    targets = rng.permutation(pools["foreign"])[: len(source)].tolist()
    dictionary = dict(zip(source, targets, strict=True))
    return World(facts=facts, dictionary=dictionary, **pools)


@dataclass(frozen=True)
class Task:
    """One text task.

    Attributes:
        name: task name.
        metric: "accuracy" (classification), "exact_match" or "bleu".
        chance: score of random guessing among valid answers (for the normalized average).
        answer_vocab: the words this task answers with (defines its output format).
        episode: `episode(rng) -> state`, the hidden per-episode state (or None).
        example: `example(rng, state) -> (input text, answer text)`.
    """

    name: str
    metric: str
    chance: float
    answer_vocab: frozenset[str]
    episode: Callable[[np.random.Generator], Any]
    example: Callable[[np.random.Generator, Any], tuple[str, str]]

    def __post_init__(self) -> None:
        if isinstance(self.answer_vocab, str):  # "True False" would match "ru", "e", ...
            raise ValueError(f"task {self.name!r}: answer_vocab must be a collection of words "
                             f"(e.g. frozenset({{'True', 'False'}})), not a str: "
                             f"{self.answer_vocab!r}")
        object.__setattr__(self, "answer_vocab", frozenset(self.answer_vocab))
        if self.metric not in METRICS:
            raise ValueError(f"task {self.name!r}: metric must be one of {METRICS}, not "
                             f"{self.metric!r}")
        if not 0.0 <= self.chance < 1.0:
            raise ValueError(f"task {self.name!r}: chance must be in [0, 1), not {self.chance}")

    def in_format(self, answer: str) -> bool:
        """Whether `answer` is written in this task's output format (all its words)."""
        words = answer.split()
        return bool(words) and all(w in self.answer_vocab for w in words)

    def starts_in_format(self, answer: str) -> bool:
        """Whether `answer`'s first word is one of this task's answer words (an output that
        begins "True ..." is in `entail`'s format even if the model rambles on)."""
        words = answer.split()
        return bool(words) and words[0] in self.answer_vocab


def _pick(rng: np.random.Generator, pool: tuple[str, ...], n: int = 1,
          replace: bool = False) -> list[str]:
    return [pool[i] for i in rng.choice(len(pool), size=n, replace=replace)]


def make_tasks(world: World) -> dict[str, Task]:
    """The eight pretraining tasks and the two held-out targets, keyed by name."""
    w = world
    none = lambda rng: None  # noqa: E731  (tasks with a global rule have no episode state)

    def label_map(rng, state):  # per-episode label words for the two categories
        labels, items = state
        cat = int(rng.integers(2))
        return f"item {_pick(rng, items[cat])[0]} class", labels[cat]

    def sentiment(rng, _):
        signs = rng.integers(2, size=3)
        words = [_pick(rng, (w.negative, w.positive)[s])[0] for s in signs]
        return f"review {' '.join(words)} verdict", "positive" if signs.sum() >= 2 else "negative"

    def fact_qa(rng, _):
        entity = _pick(rng, tuple(w.facts))[0]
        return f"question where is {entity} ? located", w.facts[entity]

    def word_map(rng, mapping):  # the mapping is only visible in the examples
        order = rng.permutation(len(mapping))
        src = [list(mapping)[i] for i in order]
        return f"english {' '.join(src)} french", " ".join(mapping[s] for s in src)

    def extract(rng, position):
        words = _pick(rng, w.nouns, 4)
        return f"text {' '.join(words)} keyword", words[position]

    def arithmetic(rng, _):
        a, b = (int(v) for v in rng.integers(10, size=2))
        return f"compute {a} plus {b} equals", " ".join(str(a + b))

    def sequence(rng, reverse):
        words = _pick(rng, w.nouns, int(rng.integers(2, 5)))
        return f"sequence {' '.join(words)} output", " ".join(words[::-1] if reverse else words)

    def count(rng, _):
        target = _pick(rng, w.nouns[:8])[0]
        seq = _pick(rng, w.nouns[:8], 5, replace=True)
        return f"count {target} in {' '.join(seq)} total", str(seq.count(target))

    def entail(rng, _):  # verify a claim against the global facts (the RTE role)
        entity = _pick(rng, tuple(w.facts))[0]
        true = bool(rng.integers(2))
        place = w.facts[entity] if true else _pick(
            rng, tuple(p for p in w.places if p != w.facts[entity]))[0]
        return f"premise {entity} located {place} truth", "True" if true else "False"

    def translate(rng, _):
        src = _pick(rng, tuple(w.dictionary), int(rng.integers(2, 4)))
        return f"translate {' '.join(src)} into", " ".join(w.dictionary[s] for s in src)

    def mapping_state(rng):
        return dict(zip(_pick(rng, w.nouns, 3), _pick(rng, w.foreign, 3), strict=True))

    specs = {
        "label_map": ("accuracy", 0.5, w.label_words, lambda rng: (
            _pick(rng, w.label_words, 2), (tuple(_pick(rng, w.animals, 2)),
                                           tuple(_pick(rng, w.tools, 2)))), label_map),
        "sentiment": ("accuracy", 0.5, ("positive", "negative"), none, sentiment),
        "fact_qa": ("exact_match", 1 / len(w.places), w.places, none, fact_qa),
        "word_map": ("bleu", 0.0, w.foreign, mapping_state, word_map),
        "extract": ("exact_match", 0.25, w.nouns, lambda rng: int(rng.choice([0, 3])), extract),
        "arithmetic": ("exact_match", 0.0, _DIGITS, none, arithmetic),
        "sequence": ("exact_match", 0.0, w.nouns, lambda rng: bool(rng.integers(2)), sequence),
        "count": ("exact_match", 0.0, _DIGITS, none, count),
        "entail": ("accuracy", 0.5, ("True", "False"), none, entail),
        "translate": ("bleu", 0.0, w.foreign, none, translate),
    }
    return {name: Task(name, metric, chance, frozenset(vocab), episode, example)
            for name, (metric, chance, vocab, episode, example) in specs.items()}
