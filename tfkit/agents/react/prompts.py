"""The step prompts, written as Python-like code.

Every step renders the state as one call (`decide(...)`, `summarize(...)`, ...) followed by
`>>>`; the model continues with the step's output call (see `parse.STEP_ACTIONS`). Few-shot
demonstrations, when given, are earlier `call >>> output` pairs, as in the paper's prompts.
For a large prompted LLM pass `instructions=True` to prefix each step's short docstring.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from tfkit.agents.react.parse import citations
from tfkit.agents.react.state import AgentState

__all__ = ["render_prompt", "INSTRUCTIONS", "PROMPT_END"]

PROMPT_END = " >>>"
INSTRUCTIONS = {
    "decision": "# Decide: Search(thoughts, query) for an unresolved part of ORIGINAL_QUESTION, "
                "or Terminate(thoughts) when PAST_ACTIONS answer it.",
    "summarize": "# Summarize: select the links relevant to the query; write a summary "
                 "supported by them, citing [link_id=N].",
    "answer": "# Answer ORIGINAL_QUESTION from PAST_ACTIONS, citing [link_id=N].",
    "relevance": "# Does ANSWER answer ORIGINAL_QUESTION? Pass() or Revise(text).",
    "grounding": "# Is ANSWER supported by its cited sources? Pass() or Revise(text).",
}


def _s(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _past(state: AgentState) -> str:
    return "[" + ", ".join(f"({_s(q)}, {_s(s)})" for q, s in state.past) + "]"


def _call(step: str, state: AgentState, relevance_sees_past: bool = False) -> str:
    if step == "decision":
        return (f"decide(question={_s(state.question)}, past={_past(state)}, "
                f"remaining={state.remaining})")
    if step == "summarize":
        res = ", ".join(f"{k}: {_s(v)}" for k, v in state.results.items())
        return (f"summarize(question={_s(state.question)}, query={_s(state.query)}, "
                f"results={{{res}}})")
    if step == "answer":
        return f"answer(question={_s(state.question)}, past={_past(state)})"
    if step == "relevance":
        past = f"past={_past(state)}, " if relevance_sees_past else ""
        return f"check_relevance(question={_s(state.question)}, {past}answer={_s(state.answer)})"
    if step == "grounding":
        cited = {k: state.links[k] for k in citations(state.answer) if k in state.links}
        src = ", ".join(f"{k}: {_s(v)}" for k, v in cited.items())
        return f"check_grounding(answer={_s(state.answer)}, sources={{{src}}})"
    raise ValueError(f"unknown step {step!r}")


def render_prompt(step: str, state: AgentState,
                  shots: Sequence[tuple[AgentState, str]] = (), instructions: bool = False,
                  relevance_sees_past: bool = False) -> str:
    """The prompt for `step`: optional instructions, `shots` demonstrations, then the call
    (`relevance_sees_past`: the relevance check's call also lists the past actions)."""
    lines = [INSTRUCTIONS[step]] if instructions else []
    for shot_state, output in shots:
        lines.append(_call(step, shot_state, relevance_sees_past) + PROMPT_END + " " + output)
    lines.append(_call(step, state, relevance_sees_past) + PROMPT_END)
    return "\n".join(lines)
