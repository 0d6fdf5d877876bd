"""k-shot episodes: sampling, text layout and token ids with an answer-only loss mask.

An episode is `shots` solved examples followed by a query, all from one task and one hidden
episode state. Each example reads `INPUT ANSWER |`; the query prompt ends after its input, so the
model's next tokens are its answer.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from tfkit.promot.tasks import SEPARATOR, Task
from tfkit.promot.tokenizer import Tokenizer

__all__ = ["sample_episode", "prompt_text", "encode_episode", "lm_arrays", "task_mixture"]


def sample_episode(task: Task, shots: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """`shots` solved examples and the query (last), sharing one hidden episode state."""
    state = task.episode(rng)
    return [task.example(rng, state) for _ in range(shots + 1)]


def prompt_text(examples: Sequence[tuple[str, str]]) -> str:
    """The in-context prompt: solved examples, then the query's input (its answer left out)."""
    solved = [f"{x} {y} {SEPARATOR}" for x, y in examples[:-1]]
    return " ".join([*solved, examples[-1][0]])


def encode_episode(tokenizer: Tokenizer, examples: Sequence[tuple[str, str]],
                   loss_on: str = "all") -> tuple[list[int], list[float]]:
    """Token ids of a solved episode and a weight per token: 1 on answer tokens (and their `|`).

    `loss_on="all"` trains every example's answer (pretraining: later answers benefit from the
    context); `"query"` trains only the last one (fine-tuning in the k-shot format).
    """
    ids, weights = [], []
    for i, (x, y) in enumerate(examples):
        trained = loss_on == "all" or i == len(examples) - 1
        for piece, w in ((x, 0.0), (f"{y} {SEPARATOR}", 1.0 if trained else 0.0)):
            piece_ids = tokenizer.encode(piece if not ids else " " + piece)
            ids += piece_ids
            weights += [w] * len(piece_ids)
    return ids, weights


def lm_arrays(episodes: Sequence[Sequence[tuple[str, str]]], tokenizer: Tokenizer,
              length: int, loss_on: str = "all") -> dict[str, np.ndarray]:
    """Right-padded next-token arrays: `x` [N, length], `y` (x shifted by one), `w` loss mask.

    Episodes longer than `length + 1` tokens lose their earliest examples until they fit; a
    query that alone does not fit is cut (its answer too) with a warning: raise `length`.
    """
    x = np.full((len(episodes), length), tokenizer.pad_id, np.int32)
    y = np.full_like(x, tokenizer.pad_id)
    w = np.zeros(x.shape, np.float32)
    cut = 0
    for row, examples in enumerate(episodes):
        examples = list(examples)
        ids, weights = encode_episode(tokenizer, examples, loss_on)
        while len(ids) > length + 1 and len(examples) > 1:
            examples = examples[1:]
            ids, weights = encode_episode(tokenizer, examples, loss_on)
        cut += len(ids) > length + 1
        ids, weights = ids[: length + 1], weights[: length + 1]
        n = len(ids) - 1
        x[row, :n], y[row, :n], w[row, :n] = ids[:-1], ids[1:], weights[1:]
    if cut:
        warnings.warn(f"lm_arrays: {cut} of {len(episodes)} episodes do not fit length={length} "
                      "even as a lone query and were cut (answers lost); use a longer length",
                      stacklevel=2)
    return {"x": x, "y": y, "w": w}


def task_mixture(tasks: Sequence[Task], count: int, shots: tuple[int, int],
                 rng: np.random.Generator) -> list[list[tuple[str, str]]]:
    """`count` episodes of tasks drawn uniformly, with `shots` drawn uniformly in [lo, hi]."""
    out = []
    for _ in range(count):
        task = tasks[int(rng.integers(len(tasks)))]
        out.append(sample_episode(task, int(rng.integers(shots[0], shots[1] + 1)), rng))
    return out
