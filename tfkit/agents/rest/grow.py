"""Grow: roll the current policy out on a question set (no labels are used)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tfkit.agents.react.agent import ReActAgent

__all__ = ["grow", "write_jsonl", "read_jsonl"]


def grow(agent: ReActAgent, questions: Sequence[dict], trajectories_per_question: int = 1,
         seed: int = 0) -> list[dict]:
    """`trajectories_per_question` rollouts of every question (each with its own seed)."""
    out = []
    for k in range(trajectories_per_question):
        for t in agent.run(questions, seed=seed * 1000 + k):
            out.append({**t, "rollout": k})
    return out


def write_jsonl(path: str | Path, records: Sequence[dict], append: bool = False) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def read_jsonl(path: str | Path) -> list[dict]:
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
