"""The agent's prompt state: ORIGINAL_QUESTION, PAST_ACTIONS, REMAINING_SEARCHES,
CURRENT_SEARCH_RESULTS and ANSWER, plus every link retrieved so far."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AgentState"]


@dataclass
class AgentState:
    question: str
    remaining: int
    past: list[tuple[str, str]] = field(default_factory=list)  # (query, grounded summary)
    query: str = ""
    results: dict[int, str] = field(default_factory=dict)  # the latest search, by link id
    links: dict[int, str] = field(default_factory=dict)  # every retrieved link, by id
    answer: str = ""

    def snapshot(self) -> dict:
        """What a rater or a trajectory file needs to judge the next step."""
        return {"question": self.question, "remaining": self.remaining,
                "past": [list(p) for p in self.past], "query": self.query,
                "results": {str(k): v for k, v in self.results.items()},
                "links": {str(k): v for k, v in self.links.items()}, "answer": self.answer}
