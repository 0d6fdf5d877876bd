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
from tfkit.runs import atomic_write_text

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
        saved = json.loads(state.read_text()).get("history", {}) if state.exists() else {}
        self.history = {k: list(values[:epoch]) for k, values in saved.items()}
        return epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._manager_for(self.model).save(checkpoint_number=epoch + 1)
        for key, value in (logs or {}).items():  # a vector metric (F1Score(average=None)) too
            self.history.setdefault(key, []).append(np.asarray(value).tolist())
        atomic_write_text(Path(self.directory) / "epoch.json",
                          json.dumps({"epoch": epoch + 1, "history": self.history}))


def fit_resumable(model: keras.Model, x: Any, *, epochs: int, directory: str | os.PathLike,
                  callbacks: list | None = None, log: Callable[[str], None] | None = None,
                  **fit_kwargs: Any) -> dict:
    """`model.fit(x, epochs=...)` that resumes from `directory` after an interruption.

    `log`, if given, is told when a fit resumes (from which epoch) or was already complete.
    Returns the history dict of every epoch, those of earlier (interrupted) fits included.
    """
    cb = ResumableFit(directory)
    start = cb.restore(model)
    if start and log is not None:
        if start > epochs:
            log(f"{directory} holds a fit of {start} epochs, more than epochs={epochs}: "
                f"nothing to train (its history keeps all {start})")
        else:
            left = ("nothing left to train" if start == epochs else f"training epoch {epochs}"
                    if start + 1 == epochs else f"training epochs {start + 1}-{epochs}")
            log(f"resuming from {directory} after epoch {start} of {epochs}: {left}")
    earlier = {k: list(values) for k, values in cb.history.items()}
    if start >= epochs:
        return earlier
    if start and isinstance(x, tf.data.Dataset):
        # A dataset reshuffled each epoch draws each epoch's order when an iterator is made:
        # make the finished epochs' iterators, so epoch `start` sees its uninterrupted order.
        for _ in range(start):
            iter(x)
    history = model.fit(x, epochs=epochs, initial_epoch=start,
                        callbacks=[cb, *(callbacks or [])], **fit_kwargs)
    return {k: earlier.get(k, []) + [np.asarray(v).tolist() for v in vals]
            for k, vals in history.history.items()}
