"""ReST: grow, improve (rank), fine-tune / distill, evaluate."""

from tfkit.agents.rest.finetune import ModelSpec, build_lm, encode_examples, finetune, make_strategy
from tfkit.agents.rest.grow import grow, read_jsonl, write_jsonl
from tfkit.agents.rest.improve import improve
from tfkit.agents.rest.loop import evaluate_policy, run_generation

__all__ = ["ModelSpec", "build_lm", "encode_examples", "finetune", "make_strategy", "grow",
           "read_jsonl", "write_jsonl", "improve", "evaluate_policy", "run_generation"]
