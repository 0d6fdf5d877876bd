"""The ReAct search agent: a state machine of LLM calls, rolled out for many questions at once.

    Decision --Search--> search tool --> Summarize --> Decision ...
             --Terminate (or budget spent)--> Answer --> relevance check --> grounding check

Each step samples `num_samples` outputs at `temperature`; outputs are parsed with `ast`; the
valid sample of lowest perplexity continues the rollout. When no sample parses the step is
re-prompted `max_retries` times and then recorded as a failure (a failed Decision terminates, a
failed Summary adds nothing, a failed Answer leaves the question unanswered, a failed check
passes). Every sample, its score and the choice are kept in the trajectory record.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tfkit.agents.lm import LanguageModel, Sample
from tfkit.agents.react.parse import Action, ParseError, citations, parse_action
from tfkit.agents.react.prompts import render_prompt
from tfkit.agents.react.state import AgentState
from tfkit.agents.search import CachedSearch

__all__ = ["AgentConfig", "ReActAgent", "as_question_dict"]


@dataclass(frozen=True)
class AgentConfig:
    num_samples: int = 4  # samples per step (the paper: 4; 16 for its smallest model)
    temperature: float = 0.5  # the paper's sampling temperature
    max_searches: int = 10  # search budget per question (the paper's limit)
    top_k: int = 3  # snippets per search (the paper shows the top 3)
    max_retries: int = 1  # re-prompts when no sample of a step parses
    self_checks: bool = True  # run the relevance and grounding checks after Answer
    relevance_sees_past: bool = False  # the relevance check also gets PAST_ACTIONS, so it can
    # revise an answer taken from the wrong finding (without them it can only judge the form)
    max_new_tokens: int = 48  # longest step output, in model tokens
    instructions: bool = False  # prefix each prompt with the step's instructions (large LLMs)
    stop: tuple[str, ...] = ("\n",)  # an output is one line

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):  # stop="END" must not become ("E", "N", "D")
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(self.stop))
        if not all(isinstance(s, str) and s for s in self.stop):
            raise ValueError(f"AgentConfig.stop must be non-empty strings, got {self.stop!r}")
        for name in ("num_samples", "max_searches", "top_k", "max_new_tokens"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"AgentConfig.{name} must be an int >= 1, got {value!r}")
        if not isinstance(self.max_retries, numbers.Integral) or self.max_retries < 0:
            raise ValueError(f"AgentConfig.max_retries must be an int >= 0, got "
                             f"{self.max_retries!r}")
        if not isinstance(self.temperature, numbers.Real) or not 0 <= self.temperature < math.inf:
            raise ValueError(f"AgentConfig.temperature must be a finite number >= 0, got "
                             f"{self.temperature!r}")


@dataclass
class _Rollout:
    question: dict
    state: AgentState
    step: str = "decision"
    steps: list[dict] = field(default_factory=list)
    retries: int = 0
    link_counter: int = 0
    budget_exhausted: bool = False
    failures: int = 0


def as_question_dict(q: Any) -> Any:
    """A question record (a dataclass such as `tfkit.agents.world.Question`) as a dict; a
    dict, or anything else, unchanged."""
    if dataclasses.is_dataclass(q) and not isinstance(q, type):
        return dataclasses.asdict(q)
    return q


def _check_outputs(lm, outs, num_prompts: int) -> None:
    """A clear error for a LanguageModel whose `generate` breaks the interface."""
    name = type(lm).__name__
    if not isinstance(outs, (list, tuple)) or len(outs) != num_prompts:
        got = f"{len(outs)} rows" if isinstance(outs, (list, tuple)) else type(outs).__name__
        raise ValueError(f"{name}.generate must return one list of samples per prompt "
                         f"({num_prompts}), got {got}")
    for row in outs:
        bad = [s for s in row if not isinstance(s, Sample)] if isinstance(
            row, (list, tuple)) else [row]
        if bad:
            raise TypeError(f"{name}.generate must return lists of "
                            f"tfkit.agents.Sample, got {type(bad[0]).__name__}: "
                            f"{bad[0]!r:.80}")


class ReActAgent:
    """Runs the ReAct state machine with `lm` and `search`.

    Args:
        lm: a `LanguageModel` (all steps use it).
        search: `search(query, k) -> list[Snippet]`; wrapped in a shared `CachedSearch`.
        config: `AgentConfig`.
        shots: optional few-shot demonstrations per step: {step: [(AgentState, output)]}.

    Example:
        >>> from tfkit.agents import BM25Search, CallableLM, Document
        >>> replies = {  # a scripted model: one output per step (the prompt starts with it)
        ...     "decide": 'Search(thoughts="look it up", query="capital of Brev")',
        ...     "summarize": 'Summary(links=[1], text="Brev: Ume Vale [link_id=1]")',
        ...     "answer": 'Answer(text="Ume Vale [link_id=1]")'}
        >>> def reply(prompt, temperature, max_new_tokens, stop):
        ...     if prompt.startswith("decide") and "Ume Vale" in prompt:
        ...         return 'Terminate(thoughts="found it")'
        ...     return replies.get(prompt.split("(")[0], "Pass()")
        >>> docs = [Document("d1", "the capital of Brev is Ume Vale .")]
        >>> agent = ReActAgent(CallableLM(reply), BM25Search(docs))
        >>> [t] = agent.run([{"qid": "q0", "question": "what is the capital of Brev ?"}], seed=0)
        >>> t["answer"], t["searches"]
        ('Ume Vale [link_id=1]', 1)
    """

    def __init__(self, lm: LanguageModel, search: Callable, config: AgentConfig = AgentConfig(),
                 shots: dict | None = None):
        self.lm = lm
        self.search = search if isinstance(search, CachedSearch) else CachedSearch(search)
        self.config = config
        self.shots = shots or {}

    def _prompt(self, r: _Rollout) -> str:
        return render_prompt(r.step, r.state, self.shots.get(r.step, ()),
                             self.config.instructions, self.config.relevance_sees_past)

    def run(self, questions: Sequence[dict], seed: int = 0) -> list[dict]:
        """Rolls out every question (dicts with at least `question`, or records such as
        `load_csv_questions`' `Question`s); returns trajectories."""
        cfg = self.config
        questions = [as_question_dict(q) for q in questions]
        for i, q in enumerate(questions):
            if not isinstance(q, dict) or not isinstance(q.get("question"), str):
                raise TypeError(f"question {i} must be a dict with a str 'question' (e.g. "
                                f"{{'qid': 'q0', 'question': '...'}}), got {q!r:.100}")
        rollouts = [_Rollout(dict(q), AgentState(q["question"], cfg.max_searches))
                    for q in questions]
        round_ = 0
        while True:
            active = [r for r in rollouts if r.step != "done"]
            if not active:
                break
            prompts = [self._prompt(r) for r in active]
            outs = self.lm.generate(prompts, num_samples=cfg.num_samples,
                                    temperature=cfg.temperature,
                                    max_new_tokens=cfg.max_new_tokens, stop=cfg.stop,
                                    seed=seed * 100_003 + round_)
            round_ += 1
            _check_outputs(self.lm, outs, len(prompts))
            for r, prompt, samples in zip(active, prompts, outs, strict=True):
                self._advance(r, prompt, samples)
        return [self._record(r) for r in rollouts]

    def _advance(self, r: _Rollout, prompt: str, samples: list[Sample]) -> None:
        parsed: list[Action | None] = []
        for s in samples:
            try:
                parsed.append(parse_action(s.text, r.step))
            except ParseError:
                parsed.append(None)
        valid = [i for i, a in enumerate(parsed) if a is not None]
        chosen = min(valid, key=lambda i: samples[i].perplexity) if valid else None
        r.steps.append({
            "step": r.step, "prompt": prompt, "state": r.state.snapshot(), "attempt": r.retries,
            "samples": [{"text": s.text, "logprob": s.logprob, "num_tokens": s.num_tokens,
                         "perplexity": s.perplexity,
                         "action": None if a is None else a.to_json()}
                        for s, a in zip(samples, parsed, strict=True)],
            "chosen": chosen})
        if chosen is None and r.retries < self.config.max_retries:
            r.retries += 1
            return
        r.retries = 0
        if chosen is None:
            r.failures += 1
        self._apply(r, parsed[chosen] if chosen is not None else None)

    def _apply(self, r: _Rollout, action: Action | None) -> None:
        st, step = r.state, r.step
        if step == "decision":
            if action is None or action.name == "Terminate":
                r.step = "answer"
                return
            st.query = action.args["query"]
            snippets, cached = self.search.lookup(st.query, self.config.top_k)
            st.remaining -= 1
            st.results = {}
            for snip in snippets:
                r.link_counter += 1
                st.results[r.link_counter] = snip.text
                st.links[r.link_counter] = snip.text
            r.steps[-1]["search"] = {"query": st.query, "cached": cached,
                                     "results": {str(k): v for k, v in st.results.items()}}
            r.step = "summarize"
        elif step == "summarize":
            if action is not None:
                st.past.append((st.query, action.args["text"]))
            if st.remaining <= 0:  # budget spent: Terminate is forced
                r.budget_exhausted = True
                r.steps.append({"step": "decision", "forced": True, "state": st.snapshot(),
                                "samples": [], "chosen": None})
                r.step = "answer"
            else:
                r.step = "decision"
        elif step == "answer":
            st.answer = action.args["text"] if action is not None else ""
            r.step = "relevance" if self.config.self_checks else "done"
        elif step in ("relevance", "grounding"):
            if action is not None and action.name == "Revise":
                st.answer = action.args["text"]
            r.step = "grounding" if step == "relevance" else "done"

    def _record(self, r: _Rollout) -> dict:
        st = r.state
        cited = citations(st.answer)
        searches = sum(1 for s in r.steps if "search" in s)
        return {**r.question, "answer": st.answer, "cited": cited,
                "cited_valid": bool(cited) and all(c in st.links for c in cited),
                "links": {str(k): v for k, v in st.links.items()}, "searches": searches,
                "cache_hits": sum(1 for s in r.steps if s.get("search", {}).get("cached")),
                "budget_exhausted": r.budget_exhausted, "failures": r.failures,
                "steps": r.steps}
