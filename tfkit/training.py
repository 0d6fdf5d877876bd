"""Resumable Keras training: `model.fit` that continues from its last epoch checkpoint."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tfkit.backend import keras, tf
from tfkit.errors import TfkitError
from tfkit.runs import atomic_write_text, read_json

__all__ = ["CheckpointMismatchError", "ResumableFit", "fit_resumable"]


class CheckpointMismatchError(TfkitError, ValueError):
    """The checkpoint to resume from was written by a model of other variable shapes."""


class ResumableFit(keras.callbacks.Callback):
    """Checkpoints model + optimizer every epoch into `directory` and tells where to resume.

    Args:
        directory: where `tf.train.CheckpointManager` keeps the last `max_to_keep` checkpoints.
        max_to_keep: checkpoints kept on disk.

    Example:
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        >>> model.compile("adam", "mse")
        >>> x, y = np.ones((8, 4), "float32"), np.ones((8, 1), "float32")
        >>> cb = ResumableFit("checkpoints/tiny")
        >>> _ = model.fit(x, y, epochs=2, initial_epoch=cb.restore(model), callbacks=[cb],
        ...               verbose=0)
        >>> len(cb.history["loss"]), cb.restore(model)  # run again: resumes after epoch 2
        (2, 2)
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 1):
        super().__init__()
        self.directory = str(directory)
        self.max_to_keep = max_to_keep
        self.history: dict[str, list[float]] = {}  # every epoch's logs, restored ones included
        self.stopped = False  # whether the restored fit was ended early by a callback
        self._logs: list[dict] = []  # each epoch's logs, in order (a key may skip epochs)
        self._manager: tf.train.CheckpointManager | None = None

    def _manager_for(self, model: keras.Model) -> tf.train.CheckpointManager:
        if self._manager is None:
            ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
            self._manager = tf.train.CheckpointManager(ckpt, self.directory, self.max_to_keep)
        return self._manager

    def restore(self, model: keras.Model) -> int:
        """Restores the latest checkpoint into `model` (and the logs of its epochs into
        `history`); returns the epoch to start from: the checkpoint's, which is its number."""
        manager = self._manager_for(model)
        if manager.latest_checkpoint is None:
            return 0
        if not model.optimizer.variables:  # build optimizer slots so they restore too
            model.optimizer.build(model.trainable_variables)
        try:
            manager.checkpoint.restore(manager.latest_checkpoint).expect_partial()
        except (ValueError, tf.errors.InvalidArgumentError) as e:  # another model's variables
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointMismatchError(
                f"{manager.latest_checkpoint} does not fit this model ({first}): it was "
                f"written by a model of other shapes; delete {self.directory} to train afresh, "
                "or pass another directory") from None
        epoch = int(manager.latest_checkpoint.rsplit("-", 1)[-1])
        state = Path(self.directory) / "epoch.json"
        saved = (read_json(state, dict, remedy=f"delete {self.directory} to train afresh")
                 if state.exists() else {})
        if "logs" in saved:  # written before its checkpoint: it may hold one epoch more
            self._logs = saved["logs"][:epoch]
            self.history = {}
            for logs in self._logs:
                for key, value in logs.items():
                    self.history.setdefault(key, []).append(value)
            self.stopped = bool(saved.get("stopped")) and saved.get("epoch") == epoch
        else:  # an older tfkit's epoch.json: the history lists alone
            self.history = {k: list(v[:epoch]) for k, v in saved.get("history", {}).items()}
        return epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        # The epoch's logs first, then its checkpoint: a fit killed in between resumes from the
        # previous checkpoint with the logs up to it (restore cuts epoch.json to the checkpoint)
        # instead of from this one without this epoch's logs. Run after the other callbacks
        # (fit_resumable puts it last), it sees an EarlyStopping's stop and restored weights.
        logs = {k: np.asarray(v).tolist() for k, v in (logs or {}).items()}  # vectors too
        self._logs.append(logs)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        self.stopped = bool(self.model.stop_training)
        atomic_write_text(Path(self.directory) / "epoch.json", json.dumps(
            {"epoch": epoch + 1, "history": self.history, "logs": self._logs,
             "stopped": self.stopped}))
        self._manager_for(self.model).save(checkpoint_number=epoch + 1)


def fit_resumable(model: keras.Model, x: Any, *, epochs: int, directory: str | os.PathLike,
                  callbacks: list | None = None, log: Callable[[str], None] | None = None,
                  **fit_kwargs: Any) -> dict:
    """`model.fit(x, epochs=...)` that resumes from `directory` after an interruption.

    `log`, if given, is told when a fit resumes (from which epoch) or was already complete.
    A fit that a callback stopped (EarlyStopping, TerminateOnNaN) is complete: re-running it
    trains nothing, as the straight run. A callback's own state (EarlyStopping's wait count)
    is not checkpointed: it starts afresh on a resume.
    Returns the history dict of every epoch, those of earlier (interrupted) fits included.
    """
    cb = ResumableFit(directory)
    start = cb.restore(model)
    if start and log is not None:
        if cb.stopped and start < epochs:
            log(f"{directory} holds a fit that a callback stopped after epoch {start} of "
                f"{epochs}: nothing left to train")
        elif start > epochs:
            log(f"{directory} holds a fit of {start} epochs, more than epochs={epochs}: "
                f"nothing to train (its history keeps all {start})")
        else:
            left = ("nothing left to train" if start == epochs else f"training epoch {epochs}"
                    if start + 1 == epochs else f"training epochs {start + 1}-{epochs}")
            log(f"resuming from {directory} after epoch {start} of {epochs}: {left}")
    earlier = {k: list(values) for k, values in cb.history.items()}
    if start >= epochs or cb.stopped:  # as a straight run, which stopped there
        return earlier
    steps = fit_kwargs.get("steps_per_epoch")
    if start and isinstance(x, tf.data.Dataset):
        if steps is not None and int(x.cardinality()) != steps:
            # Keras reads such a dataset (e.g. endless, .repeat()) as one stream over all
            # epochs: continue it where epoch `start` would have begun.
            x = x.skip(start * steps)
        else:
            # A dataset reshuffled each epoch draws each epoch's order when an iterator is
            # made: make the finished epochs' iterators, so epoch `start` sees its
            # uninterrupted order.
            for _ in range(start):
                iter(x)
    history = model.fit(x, epochs=epochs, initial_epoch=start,
                        callbacks=[*(callbacks or []), cb], **fit_kwargs)
    return {k: earlier.get(k, []) + [np.asarray(v).tolist() for v in vals]
            for k, vals in history.history.items()}
