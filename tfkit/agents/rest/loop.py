"""The ReST loop's pieces composed: one generation (grow + improve) and evaluation.

    grow      roll the policy out on the training questions (no labels)
    improve   rank every step's samples; the best one is that step's target
    fine-tune train a new model of each size on the targets (`rest.finetune.finetune`);
              training the smaller sizes on the large model's data is the self-distillation
    evaluate  mean ± std auto-eval accuracy over several sampled runs
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import numpy as np

from tfkit.agents.autoeval import Judge, OfflineJudge, as_references, evaluate_answers
from tfkit.agents.lm import LanguageModel
from tfkit.agents.ranker import OfflineRater, Ranker
from tfkit.agents.react.agent import AgentConfig, ReActAgent, as_question_dict
from tfkit.agents.rest.grow import grow
from tfkit.agents.rest.improve import improve

__all__ = ["run_generation", "evaluate_policy"]

DEFAULT_AGENT = AgentConfig()  # the paper's settings: 4 samples at T=0.5, 10 searches


def run_generation(policy: LanguageModel, search: Callable, questions: Sequence[dict], *,
                   agent_config: AgentConfig = DEFAULT_AGENT, ranker: Ranker | None = None,
                   trajectories_per_question: int = 1, targets: str = "ranker", seed: int = 0
                   ) -> tuple[list[dict], list[dict]]:
    """Grow + improve once: returns (annotated trajectories, fine-tuning examples)."""
    agent = ReActAgent(policy, search, agent_config)
    trajectories = grow(agent, questions, trajectories_per_question, seed)
    examples = improve(trajectories, ranker or OfflineRater(), targets)
    return trajectories, examples


def _with_references(q: dict, i: int) -> dict:
    """`q` with `answers` as a tuple of strings (one str is one reference), or a clear error."""
    refs = q.get("answers") if isinstance(q, dict) else None
    if refs is None:
        hint = " (found 'answer': name it 'answers')" if isinstance(q, dict) and "answer" in q \
            else ""
        raise ValueError(f"question {i} needs 'answers', the reference and its aliases{hint}: "
                         f"{q!r:.100}")
    refs = as_references(refs)
    if not refs or not all(isinstance(r, str) for r in refs):
        raise TypeError(f"question {i}: 'answers' must be a str or a list of str, got "
                        f"{q['answers']!r:.100}")
    return {**q, "answers": refs}


def evaluate_policy(policy: LanguageModel, search: Callable, questions: Sequence[dict], *,
                    agent_config: AgentConfig = DEFAULT_AGENT, runs: int = 10,
                    judge: Judge | None = None, seed: int = 0) -> dict:
    """Accuracy (%) mean/std over `runs` sampled runs, process metrics averaged, and
    `question_accuracy`: each question's accuracy over the runs (for `paired_difference`).

    `questions`: dicts with `question` and `answers` (the reference and its aliases: a list of
    str, or one str), or the `Question`s `tfkit.agents.world.load_csv_questions` reads."""
    if not questions:
        raise ValueError("evaluate_policy needs at least one question")
    if not isinstance(runs, numbers.Integral) or runs < 1:
        raise ValueError(f"evaluate_policy: runs must be an int >= 1, got {runs!r}")
    questions = [_with_references(as_question_dict(q), i) for i, q in enumerate(questions)]
    judge = judge or OfflineJudge()
    agent = ReActAgent(policy, search, agent_config)
    per_run: dict[str, list[float]] = {}
    # all runs in one batched rollout: each row samples independently
    rollouts = [{**q, "run": r} for r in range(runs) for q in questions]
    trajectories = agent.run(rollouts, seed=seed * 7 + 1)  # in the rollouts' (run-major) order
    n = len(questions)
    correct = np.array([judge(t["question"], t["answer"], t["answers"]) for t in trajectories],
                       dtype=bool).reshape(runs, n)  # each answer judged once (LLM judges cost)
    for r in range(runs):
        for name, value in evaluate_answers(trajectories[r * n:(r + 1) * n],
                                            correct=correct[r].tolist()):
            per_run.setdefault(name, []).append(float(value))
    out = {f"{k}_mean": float(np.mean(v)) for k, v in per_run.items()}
    out["accuracy_std"] = float(np.std(per_run["accuracy"]))
    out["accuracy_runs"] = per_run["accuracy"]
    # per question, % of runs judged correct: lets two policies be compared question by question
    out["question_accuracy"] = (100.0 * correct.mean(axis=0)).tolist()
    return out
