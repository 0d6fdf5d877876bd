"""AI feedback: rank the samples of one agent step.

`LLMRanker` asks any LanguageModel with the paper's ranking prompt and parses
"Answer: #X" (two samples) or "Ranking: #X > #Y > ..." (more). `OfflineRater` applies the
paper's rater instructions as deterministic checks on the step's state; it is a stand-in for
the LLM ranker where no large model is available (documented in docs/rest_react.md):

- Decision: non-empty thoughts; a query about an unresolved part of the question that builds
  on the latest finding and is not a repeat; Terminate only once nothing is unresolved.
- Summarize: links selected from the current results, a summary supported by the selected
  snippets, relevant to the query and citing the selected links.
- Answer / checks: an answer citing retrieved links whose snippets support it, taken from the
  latest finding; no refusals; fewer edits (Pass) on ties.
Ties are broken by perplexity (lower first).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Protocol

from tfkit.agents.lm import LanguageModel, first_text
from tfkit.agents.react.parse import citations, strip_citations
from tfkit.agents.search import words

__all__ = ["Ranker", "OfflineRater", "LLMRanker", "ranking_prompt", "parse_ranking",
           "unresolved_words"]


class Ranker(Protocol):
    """What ReST's improve step ranks a step's samples with (`OfflineRater`, `LLMRanker`)."""

    def rank(self, step: dict) -> list[int]:
        """Sample indices of `step["samples"]`, best first."""

_STOP = {"what", "is", "the", "of", "a", "an", "who", "which", "where", "when", "in", "was",
         "how", "did", "does", "do", "to", "and", "by", "for", "on", "as", "has"}
_REFUSALS = ("unknown", "not sure", "cannot", "can't", "no answer", "nothing", "don't know")


def _content(text: str) -> set[str]:
    return {w for w in words(strip_citations(text)) if w not in _STOP and w != "link_id"}


def unresolved_words(question: str, past: Sequence[Sequence[str]]) -> set[str]:
    """Content words of the question not yet covered by any past summary."""
    covered = set().union(*(_content(s) for _, s in past)) if past else set()
    return _content(question) - covered


def _ppl(perplexity: float) -> float:
    """A perplexity as a sort key: NaN ranks last (NaN compares false, so it would not)."""
    return math.inf if math.isnan(perplexity) else perplexity


class OfflineRater:
    """Scores and ranks a step's samples by the rater instructions (see module docstring)."""

    def score(self, step: dict, action: dict | None) -> float:
        if action is None:
            return float("-inf")
        st, name, args = step["state"], action["name"], action["args"]
        kind = step["step"]
        if kind == "decision":
            return self._decision(st, name, args)
        if kind == "summarize":
            return self._summary(st, args)
        if kind == "answer":
            return self._answer(st, args["text"])
        answer = st["answer"] if name == "Pass" else args["text"]
        return self._answer(st, answer) + (0.5 if name == "Pass" else 0.0)

    def _decision(self, st: dict, name: str, args: dict) -> float:
        past = st["past"]
        open_words = unresolved_words(st["question"], past)
        score = 1.0 if args.get("thoughts", "").strip() else 0.0
        if name == "Terminate":
            return score + (3.0 if past and not open_words else 0.0)
        query = _content(args["query"])
        known = _content(st["question"]).union(*(_content(s) for _, s in past))
        score += 1.0 if query & open_words else 0.0
        score += 1.0 if query <= known | open_words else 0.0
        if past:
            latest = _content(past[-1][1]) - _content(st["question"])
            score += 1.0 if query & latest else 0.0
        else:
            score += 1.0 if query <= _content(st["question"]) else 0.0
        repeat = any(words(args["query"]) == words(q) for q, _ in past)
        return score - (2.0 if repeat else 0.0)

    def _summary(self, st: dict, args: dict) -> float:
        links, text = args["links"], args["text"]
        results = {int(k): v for k, v in st["results"].items()}
        chosen = [results[k] for k in links if k in results]
        score = 1.0 if links and len(chosen) == len(links) else 0.0
        support = set().union(*(set(words(t)) for t in chosen)) if chosen else set()
        claim = _content(text)
        score += 1.0 if claim and claim <= support else 0.0
        score += 1.0 if _content(st["query"]) <= claim else 0.0
        cited = citations(text)
        score += 1.0 if cited and set(cited) <= set(links) else 0.0
        return score

    def _answer(self, st: dict, text: str) -> float:
        body = strip_citations(text).lower()
        if not body or any(r in body for r in _REFUSALS):
            return 0.0
        links = {int(k): v for k, v in st["links"].items()}
        cited = [links[c] for c in citations(text) if c in links]
        score = 1.0 + (1.0 if cited else 0.0)
        score += 1.0 if cited and any(body in t.lower() for t in cited) else 0.0
        if st["past"]:
            score += 1.0 if body in strip_citations(st["past"][-1][1]).lower() else 0.0
        return score

    def rank(self, step: dict) -> list[int]:
        """Sample indices, best first."""
        samples = step["samples"]
        scores = [self.score(step, s["action"]) for s in samples]
        return sorted(range(len(samples)), key=lambda i: (-scores[i],
                                                           _ppl(samples[i]["perplexity"])))


RANKING_INSTRUCTIONS = (
    "You are rating the outputs of one step of a search agent answering ORIGINAL_QUESTION.\n"
    "Good outputs: have non-empty thoughts; search for an unresolved part of the question; "
    "write summaries supported by the selected snippets; give answers that cite links whose "
    "snippets support them; use fewer steps.\n")


def ranking_prompt(step_prompt: str, outputs: Sequence[str]) -> str:
    """The paper-style ranking prompt for the outputs of one step."""
    body = "\n".join(f"#{i + 1}: {o}" for i, o in enumerate(outputs))
    if len(outputs) == 2:
        ask = "Which output is better? Reply 'Answer: #X'."
    else:
        ask = "Rank the outputs, best first. Reply 'Ranking: #X > #Y > ...'."
    return f"{RANKING_INSTRUCTIONS}\nSTEP:\n{step_prompt}\n\nOUTPUTS:\n{body}\n\n{ask}\n"


def parse_ranking(reply: str, n: int) -> list[int] | None:
    """0-based indices best first from "Answer: #X" / "Ranking: #X > #Y"; None if unusable."""
    m = re.search(r"Ranking:\s*(#\d+(?:\s*>\s*#\d+)*)", reply)
    if m:
        order = [int(x) - 1 for x in re.findall(r"#(\d+)", m.group(1))]
    else:
        m = re.search(r"Answer:\s*#(\d+)", reply)
        if not m:
            return None
        order = [int(m.group(1)) - 1]
    order = [i for i in dict.fromkeys(order) if 0 <= i < n]
    if not order:
        return None
    return order + [i for i in range(n) if i not in order]


class LLMRanker:
    """Ranks a step's samples with `lm` and the paper's ranking prompt.

    Args:
        lm: any LanguageModel (ideally a large one).
        fallback: ranker used when the reply cannot be parsed (default `OfflineRater`).
    """

    def __init__(self, lm: LanguageModel, fallback: OfflineRater | None = None):
        self.lm = lm
        self.fallback = fallback or OfflineRater()

    def rank(self, step: dict) -> list[int]:
        texts = [s["text"] for s in step["samples"]]
        reply = first_text(self.lm.generate([ranking_prompt(step.get("prompt", ""), texts)],
                                            num_samples=1, temperature=0.0, max_new_tokens=32))
        return parse_ranking(reply, len(texts)) or self.fallback.rank(step)
