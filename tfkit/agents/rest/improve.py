"""Improve: rank every step's samples and keep the best one as that step's fine-tuning target.

Rollouts follow perplexity; targets follow the ranker (off-policy), as in the paper. With
`targets="perplexity"` the chosen (lowest-perplexity) sample is the target instead: the
"better data" ablation.
"""

from __future__ import annotations

from collections.abc import Sequence

from tfkit.agents.ranker import Ranker

__all__ = ["improve"]


def improve(trajectories: Sequence[dict], ranker: Ranker | None,
            targets: str = "ranker") -> list[dict]:
    """Annotates steps with `ranking` and `target`; returns examples {prompt, output, step}."""
    if targets not in ("ranker", "perplexity"):
        raise ValueError(f"targets must be 'ranker' or 'perplexity', not {targets!r}")
    examples = []
    for t in trajectories:
        for step in t["steps"]:
            samples = step["samples"]
            if not samples or step.get("chosen") is None:
                continue  # a forced or failed step has nothing to learn from
            if targets == "ranker":
                ranking = ranker.rank(step)
                step["ranking"] = ranking
                # the best-ranked sample that parsed (an LLM ranker may put a malformed first)
                best = next((i for i in ranking if samples[i]["action"] is not None), None)
            else:
                best = step["chosen"]
            if best is None or samples[best]["action"] is None:
                continue
            step["target"] = best
            examples.append({"prompt": step["prompt"], "output": samples[best]["text"],
                             "step": step["step"], "qid": t.get("qid")})
    return examples
