"""Auto-eval: does the agent's answer imply the reference? An LLM judge, and an offline one."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from tfkit.agents.lm import LanguageModel, first_text
from tfkit.agents.react.parse import strip_citations

__all__ = ["Judge", "as_references", "OfflineJudge", "LLMJudge", "judge_prompt", "normalize",
           "evaluate_answers", "question_set_se", "paired_difference"]

# A judge: (question, answer, references) -> does the answer imply a reference?
Judge = Callable[[str, str, Sequence[str]], bool]

_HEDGES = ("unknown", "not sure", "cannot", "can't", "don't know", "no answer", "unclear",
           "either", "maybe", "possibly", "nothing")


def normalize(text: str) -> str:
    """Lower case, no citations, punctuation or articles, single spaces."""
    text = strip_citations(text).lower()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


_HEDGE_WORDS = tuple(normalize(h) for h in (*_HEDGES, "or"))  # "can't" -> "can t"


def as_references(references: str | Sequence[str]) -> tuple[str, ...]:
    """The reference and its aliases as a tuple; one string is one reference (not its letters)."""
    return (references,) if isinstance(references, str) else tuple(references)


class OfflineJudge:
    """True when a normalized alias occurs (as whole words) in the normalized answer and the
    rest of the answer is neither a refusal nor a hedge (e.g. "X or Y"); hedge words inside
    the alias itself ("Trick or Treat") do not count."""

    def __call__(self, question: str, answer: str, references: str | Sequence[str]) -> bool:
        ans = f" {normalize(answer)} "
        refs = [f" {r} " for r in map(normalize, as_references(references)) if r]
        return any(not any(f" {h} " in ans.replace(r, " ") for h in _HEDGE_WORDS)
                   for r in refs if r in ans)


def judge_prompt(question: str, answer: str, references: str | Sequence[str]) -> str:
    """The paper-style auto-eval prompt."""
    return (f"Question: {question}\nReference answer: {' | '.join(as_references(references))}\n"
            f"Model answer: {answer}\n"
            "Does the model answer imply the reference answer? A refusal or a hedge between "
            "options is not. Reply 'Yes' or 'No'.\nReply:")


class LLMJudge:
    """The paper's judge prompt over any LanguageModel (greedy-ish, one sample)."""

    def __init__(self, lm: LanguageModel):
        self.lm = lm

    def __call__(self, question: str, answer: str, references: str | Sequence[str]) -> bool:
        reply = first_text(self.lm.generate([judge_prompt(question, answer, references)],
                                            num_samples=1, temperature=0.0, max_new_tokens=4))
        return reply.strip().lower().startswith("yes")


def evaluate_answers(trajectories: Sequence[dict], judge: Judge | None = None,
                     correct: Sequence[bool] | None = None) -> Iterator[tuple[str, float]]:
    """Yields ("accuracy", ...) and the process metrics of a batch of trajectories
    (`correct`: the judge's verdicts, one per trajectory, when already known)."""
    if correct is None:
        judge = judge or OfflineJudge()
        correct = [judge(t["question"], t["answer"], t["answers"]) for t in trajectories]
    n = max(1, len(trajectories))
    samples = [s for t in trajectories for st in t["steps"] for s in st["samples"]]
    yield "accuracy", 100.0 * sum(correct) / n
    yield "parse_failure_rate", sum(s["action"] is None for s in samples) / max(1, len(samples))
    yield "searches_per_question", sum(t["searches"] for t in trajectories) / n
    yield "budget_exhausted_rate", sum(t["budget_exhausted"] for t in trajectories) / n
    yield "citation_validity", sum(_cites_support(t) for t in trajectories) / n


def _cites_support(t: dict) -> bool:
    """Every cited id was retrieved and a cited snippet contains the answer."""
    body = normalize(t["answer"])
    cited = [t["links"].get(str(c)) for c in t["cited"]]
    return bool(cited) and all(cited) and bool(body) and any(body in normalize(c) for c in cited)


def question_set_se(question_accuracy: Sequence[float]) -> float:
    """Standard error of a mean accuracy from the questions drawn (per-question accuracies in
    %): how far the mean would move on another question set of the same size. With one run per
    question this is about the binomial sqrt(p (1 - p) / n) (exactly, with n - 1 for n)."""
    acc = np.asarray(question_accuracy, dtype=float)
    if acc.size < 2:
        raise ValueError(f"need at least 2 questions for a standard error, got {acc.size}")
    return float(acc.std(ddof=1) / np.sqrt(acc.size))


def paired_difference(before: Sequence[float], after: Sequence[float]) -> tuple[float, float]:
    """(mean of after - before, its standard error) over the same questions, in points.

    Pairing removes what the two policies share (which questions are easy), so the error is
    below the unpaired sqrt(se_before^2 + se_after^2) by as much as they agree.
    """
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired accuracies need the same questions: {a.shape} vs {b.shape}")
    return float((b - a).mean()), question_set_se(b - a)
