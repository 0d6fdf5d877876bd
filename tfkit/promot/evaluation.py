"""In-context evaluation: k-shot prompts, greedy answers, per-task metrics, normalized average and
the format-specialization rate.

A `predict_fn(prompts: list[str]) -> list[str]` answers prompt texts; `make_predict_fn` builds one
from a token-ids → logits Keras model (a `DecoderLM`, or a `PromptedLM` to keep a soft prompt on).
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

from tfkit.backend import keras, tf
from tfkit.promot.data import prompt_text, sample_episode
from tfkit.promot.prompted import text_positions
from tfkit.promot.tasks import SEPARATOR, Task
from tfkit.promot.tokenizer import Tokenizer

__all__ = ["make_predict_fn", "task_predictions", "task_score", "normalized_score", "bleu",
           "format_specialization", "own_format_rate", "evaluate_icl"]

PredictFn = Callable[[Sequence[str]], list[str]]


def make_predict_fn(model: keras.Model, tokenizer: Tokenizer, max_new_tokens: int = 4,
                    batch_size: int = 64) -> PredictFn:
    """Greedy answers (text up to the `|` separator) of a token-ids → logits model.

    A prompt whose tokens plus `max_new_tokens` exceed the model's position table (see
    `text_positions`) raises ValueError: use fewer shots, shorter examples or a longer model.
    """
    capacity = text_positions(model)

    @tf.function(reduce_retracing=True)
    def next_tokens(ids, last):  # argmax of the logits at each row's last real token
        logits = model(ids, training=False)
        return tf.argmax(tf.gather(logits, last, batch_dims=1), axis=-1, output_type=tf.int32)

    def predict(prompts: Sequence[str]) -> list[str]:
        encoded = [tokenizer.encode(p) for p in prompts]
        _check_lengths(encoded, max_new_tokens, capacity, model)
        out: list[str] = []
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start:start + batch_size]
            rows = len(chunk)
            chunk = chunk + [chunk[-1]] * (batch_size - rows)  # fixed shapes: no retracing
            lengths = np.array([len(c) for c in chunk])
            ids = np.full((batch_size, lengths.max() + max_new_tokens), tokenizer.pad_id,
                          np.int32)
            for i, c in enumerate(chunk):
                ids[i, :len(c)] = c
            answers = np.zeros((batch_size, max_new_tokens), np.int32)
            for t in range(max_new_tokens):
                token = next_tokens(tf.constant(ids), tf.constant(lengths + t - 1)).numpy()
                answers[:, t] = token
                ids[np.arange(batch_size), lengths + t] = token
            for row in answers[:rows]:
                text = tokenizer.decode(row.tolist())
                out.append(text.split(SEPARATOR)[0].strip())
        return out

    return predict


def _check_lengths(encoded: Sequence[list[int]], max_new_tokens: int, capacity: int | None,
                   model: keras.Model) -> None:
    for i, ids in enumerate(encoded):
        if not ids:
            raise ValueError(f"prompt {i} encodes to no tokens: nothing to answer")
        if capacity is not None and len(ids) + max_new_tokens > capacity:
            raise ValueError(
                f"prompt {i} has {len(ids)} tokens; with max_new_tokens={max_new_tokens} it "
                f"needs {len(ids) + max_new_tokens} positions, but {model.name!r} has "
                f"{capacity} for text (its position table, less a 'shifted' prompt's length): "
                "use fewer shots or shorter examples, or a model with more positions")


def task_predictions(predict_fn: PredictFn, task: Task, shots: int, num_queries: int,
                     seed: int) -> list[tuple[str, str]]:
    """(prediction, reference) for `num_queries` k-shot episodes of `task` (fixed by `seed`)."""
    if num_queries < 1:
        raise ValueError(f"num_queries must be at least 1, not {num_queries}")
    if shots < 0:
        raise ValueError(f"shots must be 0 or more, not {shots}")
    rng = np.random.default_rng([seed, shots, zlib.crc32(task.name.encode())])
    episodes = [sample_episode(task, shots, rng) for _ in range(num_queries)]
    preds = predict_fn([prompt_text(e) for e in episodes])
    return list(zip(preds, [e[-1][1] for e in episodes], strict=True))


def bleu(prediction: str, reference: str, max_order: int = 2) -> float:
    """Sentence BLEU up to `max_order`-grams with add-one smoothing above unigrams, in [0, 1]."""
    pred, ref = prediction.split(), reference.split()
    if not pred:
        return 0.0
    log_precision = 0.0
    for n in range(1, max_order + 1):
        p_ngrams = Counter(tuple(pred[i:i + n]) for i in range(len(pred) - n + 1))
        r_ngrams = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
        match = sum((p_ngrams & r_ngrams).values())
        total = max(sum(p_ngrams.values()), 0)
        smooth = 0 if n == 1 else 1
        if match + smooth == 0:
            return 0.0
        log_precision += math.log((match + smooth) / (total + smooth)) / max_order
    brevity = min(1.0, math.exp(1 - len(ref) / len(pred)))
    return brevity * math.exp(log_precision)


def task_score(task: Task, pairs: Sequence[tuple[str, str]]) -> float:
    """The task's metric in percent: accuracy / exact match, or BLEU-2."""
    if task.metric == "bleu":
        values = [bleu(p, r) for p, r in pairs]
    else:
        values = [float(p.split() == r.split()) for p, r in pairs]
    return 100.0 * float(np.mean(values)) if values else 0.0


def normalized_score(task: Task, score: float) -> float:
    """Score rescaled so random guessing is 0 and perfect is 100."""
    return (score - 100.0 * task.chance) / (1.0 - task.chance)


def format_specialization(target: Task, outputs: Mapping[str, Sequence[tuple[str, str]]],
                          tasks: Mapping[str, Task]) -> float:
    """Share (%) of other tasks' outputs that start in `target`'s answer format (the paper's
    "answers True/False to TriviaQA": the first answer word is one of the target's answer
    words, e.g. True/False after fine-tuning on `entail`).

    Tasks whose own correct answers are in that format (e.g. another translation task) are left
    out, since answering them in it is not a sign of specialization.
    """
    hits = []
    for name, pairs in outputs.items():
        if name == target.name:
            continue
        refs_in_format = np.mean([target.in_format(r) for _, r in pairs]) if pairs else 1.0
        if refs_in_format > 0.5:
            continue
        hits += [target.starts_in_format(p) for p, _ in pairs]
    return 100.0 * float(np.mean(hits)) if hits else 0.0


def own_format_rate(outputs: Mapping[str, Sequence[tuple[str, str]]],
                    tasks: Mapping[str, Task]) -> float:
    """Share (%) of outputs written wholly in their *own* task's answer format.

    Tells the two ways a fine-tuned LM can lose the other tasks apart: format specialization
    (answers leave their task's format, often for the target's) lowers this rate, while plain
    forgetting (right format, wrong content: "1 8" for 9 + 9) leaves it near 100 %.
    """
    hits = [tasks[name].in_format(p) for name, pairs in outputs.items() for p, _ in pairs]
    return 100.0 * float(np.mean(hits)) if hits else 0.0


def evaluate_icl(predict_fn: PredictFn, tasks: Mapping[str, Task], target: Task, shots: int,
                 num_queries: int = 100, seed: int = 0) -> Iterator[tuple[str, float]]:
    """Yields `(task, score)` for every task in `tasks`, then ("normalized_average", x) and
    ("format_specialization", rate in %) with respect to the fine-tuned `target` task."""
    if not tasks:
        raise ValueError("evaluate_icl got no tasks: pass a {name: Task} mapping")
    outputs, normalized = {}, []
    for name, task in tasks.items():
        outputs[name] = task_predictions(predict_fn, task, shots, num_queries, seed)
        score = task_score(task, outputs[name])
        normalized.append(normalized_score(task, score))
        yield name, score
    yield "normalized_average", float(np.mean(normalized))
    yield "format_specialization", format_specialization(target, outputs, tasks)
