"""A noisy scripted policy: the stand-in for the paper's prompted large model.

It is a `LanguageModel` that reads each step prompt (with `ast`, like any other output), acts
as a careful reader of this world's questions and snippets would, and with probability `noise`
per sample makes one of the mistakes a prompted LLM makes: a query about the wrong entity, a
premature Terminate, summarising a distractor snippet, answering from an earlier hop, or an
empty thought. Sample log-probabilities are random, so "lowest perplexity continues" does not
favour correct samples. It never sees reference answers.
"""

from __future__ import annotations

import ast
import json
import random
import re
from collections.abc import Sequence

from tfkit.agents.lm import Sample
from tfkit.agents.react.parse import citations, strip_citations

__all__ = ["ScriptedTeacher", "parse_fact"]

_E = r"[A-Z]\w*(?: [A-Z]\w*)?"
_FACTS = [(re.compile(rf"^the (\w+) of ({_E}) is ({_E})\s*\.?$"), (1, 2, 3)),
          (re.compile(rf"^({_E}) is the (\w+) of ({_E})\s*\.?$"), (2, 3, 1)),
          (re.compile(rf"^({_E}) has ({_E}) as (\w+)\s*\.?$"), (3, 1, 2))]
_ENTITY = re.compile(_E)


def parse_fact(text: str) -> tuple[str, str, str] | None:
    """(noun, subject, object) of a fact sentence in any paraphrase, else None."""
    text = " ".join(strip_citations(text).split())
    for pattern, (n, s, o) in _FACTS:
        m = pattern.match(text)
        if m:
            return m.group(n), m.group(s), m.group(o)
    return None


def _call(prompt: str) -> tuple[str, dict]:
    line = prompt.strip().splitlines()[-1].rsplit(">>>", 1)[0]
    call = ast.parse(line.strip(), mode="eval").body
    return call.func.id, {k.arg: ast.literal_eval(k.value) for k in call.keywords}


def _q(s: str) -> str:
    return json.dumps(s)


class ScriptedTeacher:
    """The noisy scripted policy (see the module docstring).

    Args:
        noise: probability that one sample makes a mistake.
        seed: random seed.
    """

    def __init__(self, noise: float = 0.3, seed: int = 0):
        self.noise = noise
        self.rng = random.Random(seed)

    def generate(self, prompts: Sequence[str], num_samples: int = 1, temperature: float = 0.5,
                 max_new_tokens: int = 64, stop: Sequence[str] = (), seed: int | None = None
                 ) -> list[list[Sample]]:
        if seed is not None:
            self.rng.seed(seed)
        out = []
        for p in prompts:
            name, args = _call(p)
            row = []
            for _ in range(num_samples):
                text = getattr(self, "_" + name)(args, self.rng.random() < self.noise)
                n = max(1, len(text.split()))
                row.append(Sample(text, -n * self.rng.uniform(0.05, 1.0), n))
            out.append(row)
        return out

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        return [-float(len(c.split())) for c in continuations]

    # -- steps -----------------------------------------------------------------------------
    def _decide(self, args: dict, noisy: bool) -> str:
        head, _, tail = args["question"].removeprefix("what is the ").rstrip(" ?").rpartition(
            " of ")
        nouns = [n.strip() for n in head.split(" of the ")][::-1]
        entity = tail.strip()
        facts = [parse_fact(s) for _, s in args["past"]]
        if facts and facts[-1] is not None:
            entity = facts[-1][2]
        hop = len(args["past"])
        if hop >= len(nouns) or (noisy and hop and self.rng.random() < 0.4):
            return 'Terminate(thoughts="all parts resolved")'
        thoughts = "" if noisy and self.rng.random() < 0.2 else f"resolve {nouns[hop]}"
        if noisy:
            seen = _ENTITY.findall(" ".join(s for _, s in args["past"]) + " " + args["question"])
            others = [e for e in seen if e != entity]
            entity = self.rng.choice(others) if others else entity
        return f"Search(thoughts={_q(thoughts)}, query={_q(nouns[hop] + ' of ' + entity)})"

    def _summarize(self, args: dict, noisy: bool) -> str:
        noun, _, subject = args["query"].partition(" of ")
        results = args["results"]
        match = [k for k, t in results.items() if (f := parse_fact(t)) and f[:2] == (noun, subject)]
        if noisy or not match:
            facts = [k for k, t in results.items() if parse_fact(t)]
            if not facts:
                return f'Summary(links=[], text={_q("nothing about " + args["query"])})'
            match = [self.rng.choice(facts)]
        k = match[0]
        n, s, o = parse_fact(results[k])
        return f"Summary(links=[{k}], text={_q(f'the {n} of {s} is {o} [link_id={k}]')})"

    def _answer(self, args: dict, noisy: bool) -> str:
        summaries = [s for _, s in args["past"] if parse_fact(s)]
        if not summaries:
            return 'Answer(text="unknown")'
        s = self.rng.choice(summaries) if noisy else summaries[-1]
        return f"Answer(text={_q(self._answer_text(s))})"

    @staticmethod
    def _answer_text(summary: str) -> str:
        fact = parse_fact(summary)
        cited = citations(summary)
        return fact[2] + (f" [link_id={cited[0]}]" if cited else "")

    def _check_relevance(self, args: dict, noisy: bool) -> str:
        # Only a check that sees the past actions can tell an answer from an earlier finding
        # (the noisy Answer's mistake); it then revises to the latest finding.
        summaries = [s for _, s in args.get("past", ()) if parse_fact(s)]
        if noisy or not summaries:
            return "Pass()"
        latest = self._answer_text(summaries[-1])
        if strip_citations(args["answer"]).strip() == strip_citations(latest).strip():
            return "Pass()"
        return f"Revise(text={_q(latest)})"

    def _check_grounding(self, args: dict, noisy: bool) -> str:
        answer = strip_citations(args["answer"])
        sources = args["sources"]
        if not sources or any(answer and answer in t for t in sources.values()) or noisy:
            return "Pass()"
        k, text = next(iter(sources.items()))
        fact = parse_fact(text)
        if fact is None:
            return "Pass()"
        return f"Revise(text={_q(f'{fact[2]} [link_id={k}]')})"
