"""The ReAct search agent: prompts as code, `ast` parsing, the batched state machine."""

from tfkit.agents.react.agent import AgentConfig, ReActAgent
from tfkit.agents.react.parse import Action, ParseError, citations, parse_action, strip_citations
from tfkit.agents.react.prompts import render_prompt
from tfkit.agents.react.state import AgentState

__all__ = ["AgentConfig", "ReActAgent", "Action", "ParseError", "citations", "parse_action",
           "strip_citations", "render_prompt", "AgentState"]
