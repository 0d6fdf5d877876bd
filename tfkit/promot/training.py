"""Resumable language-model training with a loss on answer tokens only.

`train_lm` runs a fixed number of optimizer steps over next-token arrays (`lm_arrays`), updating
only the variables it is given (the soft prompt in stage 1, the model in stage 2, or both). Batch
`i` is drawn from a generator seeded by (seed, i), so a run resumed from its checkpoint sees the
same batches as an uninterrupted one. The loss history, and the losses of the steps since its last
entry, are saved in the same checkpoint as the weights, so a resumed run also reports the same
history as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from tfkit.backend import keras, tf
from tfkit.promot.prompted import PromptedLM, text_positions

__all__ = ["OPTIMIZERS", "SCHEDULES", "answer_loss", "make_optimizer", "train_lm"]

OPTIMIZERS = ("adam", "adafactor")  # `make_optimizer`'s names
SCHEDULES = ("cosine", "constant")  # Adam's learning-rate schedules


def answer_loss(logits: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Mean cross-entropy (float32) over the tokens whose weight is non-zero (the answers)."""
    ce = _token_losses(logits, targets)
    weights = tf.cast(weights, ce.dtype)
    return tf.reduce_sum(ce * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def _token_losses(logits: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """Cross-entropy per token in float32 (float16 logits of a "mixed_float16" model would
    overflow when summed over a batch's answer tokens)."""
    return keras.losses.sparse_categorical_crossentropy(targets, tf.cast(logits, tf.float32),
                                                        from_logits=True)


def make_optimizer(name: str, learning_rate: float, steps: int, warmup: int = 0,
                   schedule: str = "cosine") -> keras.optimizers.Optimizer:
    """Adam or Adafactor (parameter-scaled steps, constant rate).

    Adam's rate follows `schedule`: "cosine" (linear warm-up, then cosine decay to 10 %; used for
    pretraining) or "constant" (T5-style fine-tuning at a fixed rate, so training to convergence
    keeps pushing the task's answers, as in the paper's fine-tuning runs).
    Adafactor with `relative_step=False` scales each update by the parameter's RMS, which is why
    the paper's prompt-tuning rate of 0.3 is usable with it; Adam needs ~100x less.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {name!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    if name == "adafactor":
        return keras.optimizers.Adafactor(learning_rate, relative_step=False, jit_compile=False)
    if schedule == "constant":
        return keras.optimizers.Adam(learning_rate, jit_compile=False)
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

    Every `checkpoint_every` steps (and at step 0 and the last step) the model, optimizer, step
    and loss log go into one checkpoint in `checkpoint_dir`; a call that finds one resumes from
    it, so a run interrupted (Ctrl-C) and called again, in a new process or the same one,
    returns the same history and weights as an uninterrupted run. A folder written for another
    model or prompt is refused with a ValueError.

    A model computing in float16 (`mixed_float16` policy) trains with dynamic loss scaling:
    `optimizer` is wrapped in a `LossScaleOptimizer` (unless it is one), as `model.fit` does,
    and the loss scale is saved in the checkpoint with the optimizer.

    Called inside a `tf.distribute` strategy's scope (`with strategy.scope():`, the model, prompt
    and optimizer created in it), each step splits its `batch_size` examples across the
    replicas and averages the loss over the whole batch's answer tokens, so two replicas give
    the same steps, schedule and weights as one.

    Args:
        model: a token-ids → logits model (e.g. a `PromptedLM`), or {task: model}.
        variables: the variables to train (the others stay frozen).
        data: `lm_arrays` output (`x`, `y`, `w` of one shape [examples, length]), or
            {task: arrays} matching `model`.
        steps: total optimizer steps (a resumed run continues up to it).
        batch_size: examples per step (all replicas together), drawn with a generator seeded by
            (seed, step).
        optimizer: e.g. `make_optimizer(...)`.
        checkpoint_dir: folder of this run's checkpoint.
        seed: batch order.
        checkpoint_every: steps between checkpoints.
        log: optional callable receiving a progress line per logged loss.
        log_every: steps averaged into each history entry.
    """
    models = model if isinstance(model, Mapping) else {"": model}
    datasets = dict(data) if isinstance(model, Mapping) else {"": data}
    names = list(models)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    strategy = tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
    if strategy is not None:
        _check_strategy(strategy, variables, optimizer, batch_size)
    elif any(isinstance(v, tf.distribute.DistributedValues) for v in variables):
        raise ValueError("the variables to train were created under a tf.distribute strategy: "
                         "call train_lm (or promot, tune_model, ...) inside "
                         "`with strategy.scope():` as well")
    for name in names:
        what = f"data[{name!r}]" if name else "data"
        datasets[name] = _as_arrays(datasets[name], what)
        _check_arrays(models[name], datasets[name], what)
    if any(getattr(m, "compute_dtype", None) == "float16" for m in models.values()) and \
            not isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
        # float16 gradients of small values round to zero: scale the loss, as `model.fit` does
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    # The logged losses and the window since the last log, as JSON, saved with the weights.
    log_state = tf.Variable("", dtype=tf.string, trainable=False)
    parts = {"optimizer": optimizer, "step": step,
             **{f"model_{i}": m for i, m in enumerate(models.values())}}
    ckpt = tf.train.Checkpoint(log_state=log_state, **parts)
    manager = tf.train.CheckpointManager(ckpt, str(checkpoint_dir), max_to_keep=1)
    history: list[float] = []
    window: list[float] = []
    optimizer.build(list(variables))  # slots exist before tracing (and before a restore)
    if manager.latest_checkpoint:
        history, window = _restore(manager.latest_checkpoint, parts, log_state)
    else:  # the starting point: rerunning after a Ctrl-C in the same process restores it
        log_state.assign(json.dumps({"history": history, "window": window}))
        manager.save(checkpoint_number=0)
    steps_fns = {name: _train_step(models[name], variables, optimizer, strategy)
                 for name in names}
    while int(step.numpy()) < steps:
        i = int(step.numpy())
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
            log_state.assign(json.dumps({"history": history, "window": window}))
            manager.save(checkpoint_number=i + 1)
    return history


def _restore(path: str, parts: dict, log_state: tf.Variable) -> tuple[list[float], list[float]]:
    """Restores `parts` and `log_state` from checkpoint `path`; returns its (history, window).

    A checkpoint written before the loss log was part of it has no `log_state`: its weights are
    restored without it and the history comes from the `history.json` written next to it.
    """
    legacy = "log_state" not in {name.split("/")[0] for name, _ in tf.train.list_variables(path)}
    ckpt = tf.train.Checkpoint(**parts) if legacy else tf.train.Checkpoint(log_state=log_state,
                                                                           **parts)
    try:
        ckpt.restore(path).assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
        raise ValueError(f"checkpoint {path} holds a run of another model or prompt (another "
                         f"config?); resume it with the same setup, or use another "
                         f"checkpoint_dir. {e}") from e
    if legacy:
        history_file = Path(path).parent / "history.json"
        return (json.loads(history_file.read_text()) if history_file.exists() else []), []
    state = json.loads(log_state.numpy().decode())
    return state["history"], state["window"]


def _as_arrays(data, what: str):
    """`data` as `lm_arrays`-style numpy arrays: a finite `tf.data.Dataset` of {x, y, w} rows or
    batches is read into memory, lists become arrays; numpy arrays are used as they are."""
    if isinstance(data, tf.data.Dataset):
        if int(data.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
            raise ValueError(f"{what} is an infinite (repeated) tf.data.Dataset: pass it without "
                             "repeat(); train_lm draws its own batches for `steps` steps")
        spec = data.element_spec
        if not (isinstance(spec, Mapping) and {"x", "y", "w"} <= set(spec)):
            raise ValueError(f"{what}: a tf.data.Dataset must yield dicts with 'x', 'y' and 'w' "
                             f"(rows or batches of `lm_arrays` output), got {spec}")
        parts = {k: [] for k in ("x", "y", "w")}
        for element in data.as_numpy_iterator():
            for k in parts:
                parts[k].append(element[k])
        if not parts["x"]:
            return {k: np.zeros((0, 0)) for k in parts}
        batched = np.ndim(parts["x"][0]) == 2
        try:
            return {k: (np.concatenate if batched else np.stack)(v) for k, v in parts.items()}
        except ValueError as e:
            raise ValueError(f"{what}: the dataset's x, y and w must have one length in every "
                             f"element ({e})") from None
    if isinstance(data, Mapping) and not all(isinstance(data.get(k, np.empty(0)), np.ndarray)
                                             for k in ("x", "y", "w")):
        return {**data, **{k: np.asarray(data[k]) for k in ("x", "y", "w") if k in data}}
    return data


def _check_arrays(model: keras.Model, arrays: Mapping[str, np.ndarray], what: str) -> None:
    """Clear errors for `lm_arrays`-style data the model cannot train on."""
    missing = [k for k in ("x", "y", "w") if k not in arrays]
    if missing:
        raise ValueError(f"{what} lacks {', '.join(map(repr, missing))}: give the arrays "
                         "`lm_arrays` returns (x, y, w)")
    arrays = {k: arrays[k] for k in ("x", "y", "w")}  # each read once
    shapes = {k: np.shape(v) for k, v in arrays.items()}
    if len(set(shapes.values())) != 1 or len(shapes["x"]) != 2:
        raise ValueError(f"{what}: x, y and w must be [examples, length] arrays of one shape, "
                         f"got {shapes}")
    if shapes["x"][0] == 0:
        raise ValueError(f"{what} has no examples")
    capacity = text_positions(model)
    if capacity is not None and shapes["x"][1] > capacity:
        raise ValueError(f"{what} has sequences of {shapes['x'][1]} tokens, but the model has "
                         f"{capacity} positions for text: build the arrays with a smaller "
                         "length (or use a model with more positions)")
    lm = model.lm if isinstance(model, PromptedLM) else model
    size = getattr(getattr(lm, "backbone", lm), "vocabulary_size", None)
    ids = [np.asarray(arrays[k]) for k in ("x", "y")]
    if size is None or not all(a.size for a in ids):
        return
    low, high = min(int(a.min()) for a in ids), max(int(a.max()) for a in ids)
    if low < 0 or high >= int(size):
        raise ValueError(f"{what} has token ids up to {high} (lowest {low}), but the model has a "
                         f"vocabulary of {int(size)} tokens (ids 0 … {int(size) - 1}): encode "
                         "the data with the model's own tokenizer")


def _check_strategy(strategy: tf.distribute.Strategy, variables: Sequence[tf.Variable],
                    optimizer: keras.optimizers.Optimizer, batch_size: int) -> None:
    """Clear errors for training under `strategy` what was made outside its scope."""
    outside = [v.name for v in variables if not strategy.extended.variable_created_in_scope(v)]
    if outside:
        raise ValueError(f"train_lm runs under a {type(strategy).__name__}, but "
                         f"{len(outside)} of the variables to train (e.g. {outside[0]!r}) were "
                         "created outside its scope: build the model (and load or create the "
                         "prompt) inside `with strategy.scope():` too")
    if getattr(optimizer, "_distribution_strategy", strategy) is not strategy:
        raise ValueError(f"train_lm runs under a {type(strategy).__name__}, but the optimizer "
                         "was created outside its scope: create it inside "
                         "`with strategy.scope():` too")
    if batch_size < strategy.num_replicas_in_sync:
        raise ValueError(f"batch_size {batch_size} (examples per step, all replicas together) "
                         f"is smaller than the {strategy.num_replicas_in_sync} replicas")


def _scaled(optimizer: keras.optimizers.Optimizer, loss: tf.Tensor) -> tf.Tensor:
    """The loss times the loss scale (a `LossScaleOptimizer`, for float16 models)."""
    if isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
        return optimizer.get_scaled_loss(loss)
    return loss


def _unscaled(optimizer: keras.optimizers.Optimizer, grads: list) -> list:
    if isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
        return optimizer.get_unscaled_gradients(grads)
    return grads


def _train_step(model: keras.Model, variables: Sequence[tf.Variable],
                optimizer: keras.optimizers.Optimizer,
                strategy: tf.distribute.Strategy | None = None) -> Callable:
    if strategy is not None:
        return _distributed_train_step(model, variables, optimizer, strategy)

    @tf.function(reduce_retracing=True)
    def step(x, y, w):
        with tf.GradientTape() as tape:
            loss = answer_loss(model(x, training=True), y, w)
            scaled = _scaled(optimizer, loss)
        grads = _unscaled(optimizer, tape.gradient(scaled, variables))
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    return step


def _distributed_train_step(model: keras.Model, variables: Sequence[tf.Variable],
                            optimizer: keras.optimizers.Optimizer,
                            strategy: tf.distribute.Strategy) -> Callable:
    """One step of a global batch split across `strategy`'s replicas: each replica's loss is its
    answer tokens' cross-entropy over the *whole* batch's answer-token count, and the optimizer
    sums the replicas' gradients, so the step equals `answer_loss` on the whole batch."""
    replicas = strategy.num_replicas_in_sync

    def replica_step(x, y, w, total):
        with tf.GradientTape() as tape:
            ce = _token_losses(model(x, training=True), y)
            loss = tf.reduce_sum(ce * tf.cast(w, ce.dtype)) / total
            scaled = _scaled(optimizer, loss)
        grads = _unscaled(optimizer, tape.gradient(scaled, variables))
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    @tf.function(reduce_retracing=True)
    def run(x, y, w, total):
        losses = strategy.run(replica_step, args=(x, y, w, total))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    def step(x, y, w):
        total = tf.constant(max(float(np.sum(w, dtype=np.float64)), 1.0), tf.float32)
        shards = [np.array_split(a, replicas) for a in (x, y, w)]
        values = [strategy.experimental_distribute_values_from_function(
            lambda ctx, parts=parts: tf.constant(parts[ctx.replica_id_in_sync_group]))
            for parts in shards]
        return run(*values, total)

    return step
