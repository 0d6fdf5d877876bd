"""Parses step outputs (Python-like calls) with `ast` only: nothing is ever evaluated."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from tfkit.errors import TfkitError

__all__ = ["Action", "ParseError", "parse_action", "citations", "strip_citations", "STEP_ACTIONS"]

# step -> the calls its output may contain, with their required keyword arguments
STEP_ACTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "decision": {"Search": ("thoughts", "query"), "Terminate": ("thoughts",)},
    "summarize": {"Summary": ("links", "text")},
    "answer": {"Answer": ("text",)},
    "relevance": {"Pass": (), "Revise": ("text",)},
    "grounding": {"Pass": (), "Revise": ("text",)},
}
MAX_SOURCE_CHARS = 20_000  # a step call is a few hundred characters; longer is not one
_CITE = re.compile(r"\[\s*link_id\s*=\s*(\d+)\s*\]")


class ParseError(TfkitError, ValueError):
    """A step output is not one of the calls its step allows."""


@dataclass(frozen=True)
class Action:
    name: str
    args: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"name": self.name, "args": self.args}


def _literal(node: ast.AST):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as e:
        # (the node's type only: ast.dump recurses as deep as the node nests)
        raise ParseError(f"argument is not a literal ({type(node).__name__})") from e


def parse_action(text: str, step: str) -> Action:
    """`Search(thoughts="...", query="...")` -> Action("Search", {...}); raises ParseError."""
    allowed = STEP_ACTIONS[step]
    source = text.strip()
    if len(source) > MAX_SOURCE_CHARS:
        raise ParseError(f"output too long for a call ({len(source)} > {MAX_SOURCE_CHARS} "
                         f"characters): {source[:60]!r}")
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:  # the last two:
        raise ParseError(f"not a call: {source[:60]!r}") from e  # deep nesting ("-" * 5000)
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise ParseError(f"not a call: {source[:60]!r}")
    if call.func.id not in allowed:
        raise ParseError(f"{call.func.id} is not allowed in step {step} ({list(allowed)})")
    if call.args:
        raise ParseError("use keyword arguments only")
    names = [kw.arg for kw in call.keywords if kw.arg is not None]
    for name in names:  # Python refuses f(a=1, a=2); a dict would keep the last value
        if names.count(name) > 1:
            raise ParseError(f"repeated keyword {name!r} in {call.func.id}")
    args = {kw.arg: _literal(kw.value) for kw in call.keywords if kw.arg is not None}
    missing = [k for k in allowed[call.func.id] if k not in args]
    if missing:
        raise ParseError(f"{call.func.id} is missing {missing}")
    for key, value in args.items():
        if key == "links":
            if not isinstance(value, list) or not all(
                    isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise ParseError(f"links must be a list of integers, got {value!r:.60}")
        elif not isinstance(value, str):
            raise ParseError(f"{key} must be a string")
        else:
            args[key] = " ".join(value.split())
    return Action(call.func.id, args)


def citations(text: str) -> list[int]:
    """The link ids cited as `[link_id=N]` in `text`."""
    return [int(m) for m in _CITE.findall(text)]


def strip_citations(text: str) -> str:
    return " ".join(_CITE.sub(" ", text).split())
