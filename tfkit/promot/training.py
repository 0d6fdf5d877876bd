"""Resumable language-model training with a loss on answer tokens only.

`train_lm` runs a fixed number of optimizer steps over next-token arrays (`lm_arrays`), updating
only the variables it is given (the soft prompt in stage 1, the model in stage 2, or both). Batch
`i` is drawn from a generator seeded by (seed, i), so a run resumed from its checkpoint sees the
same batches as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from tfkit.backend import keras, tf
from tfkit.runs import atomic_write_text

__all__ = ["answer_loss", "make_optimizer", "train_lm"]


def answer_loss(logits: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Mean cross-entropy over the tokens whose weight is non-zero (the answers)."""
    ce = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
    weights = tf.cast(weights, ce.dtype)
    return tf.reduce_sum(ce * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def make_optimizer(name: str, learning_rate: float, steps: int, warmup: int = 0,
                   schedule: str = "cosine") -> keras.optimizers.Optimizer:
    """Adam or Adafactor (parameter-scaled steps, constant rate).

    Adam's rate follows `schedule`: "cosine" (linear warm-up, then cosine decay to 10 %; used for
    pretraining) or "constant" (T5-style fine-tuning at a fixed rate, so training to convergence
    keeps pushing the task's answers, as in the paper's fine-tuning runs).
    Adafactor with `relative_step=False` scales each update by the parameter's RMS, which is why
    the paper's prompt-tuning rate of 0.3 is usable with it; Adam needs ~100x less.
    """
    if name == "adafactor":
        return keras.optimizers.Adafactor(learning_rate, relative_step=False, jit_compile=False)
    if name != "adam":
        raise ValueError(f"optimizer must be 'adam' or 'adafactor', not {name!r}")
    if schedule == "constant":
        return keras.optimizers.Adam(learning_rate, jit_compile=False)
    if schedule != "cosine":
        raise ValueError(f"schedule must be 'cosine' or 'constant', not {schedule!r}")
    decay = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else learning_rate, max(steps - warmup, 1), alpha=0.1,
        warmup_target=learning_rate if warmup else None, warmup_steps=warmup)
    return keras.optimizers.Adam(decay, jit_compile=False)


def train_lm(model: keras.Model | Mapping[str, keras.Model],
             variables: Sequence[tf.Variable],
             data: dict[str, np.ndarray] | Mapping[str, dict[str, np.ndarray]], *,
             steps: int, batch_size: int, optimizer: keras.optimizers.Optimizer,
             checkpoint_dir: str | os.PathLike, seed: int = 0, checkpoint_every: int = 200,
             log: Callable[[str], None] | None = None, log_every: int = 100) -> list[float]:
    """Trains `variables` for `steps` steps; returns the loss every `log_every` steps.

    `model`/`data` may be dicts keyed by task (multi-task ProMoT: one prompted model per task,
    all sharing the base LM); step `i` then trains task `i % len(tasks)`.
    """
    models = model if isinstance(model, Mapping) else {"": model}
    datasets = data if isinstance(model, Mapping) else {"": data}
    names = list(models)
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    tracked = {f"model_{i}": m for i, m in enumerate(models.values())}
    ckpt = tf.train.Checkpoint(optimizer=optimizer, step=step, **tracked)
    manager = tf.train.CheckpointManager(ckpt, str(checkpoint_dir), max_to_keep=1)
    history_file = Path(checkpoint_dir) / "history.json"
    history: list[float] = []
    optimizer.build(list(variables))  # slots exist before tracing (and before a restore)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        if history_file.exists():
            history = json.loads(history_file.read_text())
    steps_fns = {name: _train_step(models[name], variables, optimizer) for name in names}
    window: list[float] = []
    while int(step) < steps:
        i = int(step)
        name = names[i % len(names)]
        arrays = datasets[name]
        rows = np.random.default_rng([seed, i]).integers(len(arrays["x"]), size=batch_size)
        loss = steps_fns[name](arrays["x"][rows], arrays["y"][rows], arrays["w"][rows])
        window.append(float(loss))
        step.assign_add(1)
        if (i + 1) % log_every == 0 or i + 1 == steps:
            history.append(float(np.mean(window)))
            window = []
            if log is not None:
                log(f"step {i + 1}/{steps}: answer loss {history[-1]:.3f}")
        if (i + 1) % checkpoint_every == 0 or i + 1 == steps:
            manager.save(checkpoint_number=i + 1)
            atomic_write_text(history_file, json.dumps(history))
    return history


def _train_step(model: keras.Model, variables: Sequence[tf.Variable],
                optimizer: keras.optimizers.Optimizer) -> Callable:
    @tf.function(reduce_retracing=True)
    def step(x, y, w):
        with tf.GradientTape() as tape:
            loss = answer_loss(model(x, training=True), y, w)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    return step
