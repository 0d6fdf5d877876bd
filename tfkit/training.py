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


# What these Keras callbacks carry from epoch to epoch (their settings are the constructor's).
_CARRIED = {keras.callbacks.EarlyStopping: ("wait", "stopped_epoch", "best", "best_epoch"),
            keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter")}


class _CallbackState(tf.Module):
    """The carried state of a fit's EarlyStopping / ReduceLROnPlateau callbacks, as variables
    of the epoch's checkpoint (so a resumed fit continues their counts, best values and
    EarlyStopping's best weights). Other callbacks start afresh on a resume."""

    def __init__(self, callbacks: list, model: keras.Model):
        super().__init__(name="callbacks")
        self.callbacks = [cb for cb in callbacks if type(cb) in _CARRIED]
        self.saved = tf.Variable(False)  # False: an older checkpoint, or none yet
        self.values = [tf.Variable(np.zeros(len(_CARRIED[type(cb)]) + 1), dtype=tf.float64)
                       for cb in self.callbacks]  # the attributes, then "holds best weights"
        # EarlyStopping(restore_best_weights=True)'s weights (only if the model is built now)
        self.best_weights = [[tf.Variable(w) for w in model.get_weights()]
                             if getattr(cb, "restore_best_weights", False) else []
                             for cb in self.callbacks]

    def capture(self) -> None:
        for cb, values, best in zip(self.callbacks, self.values, self.best_weights,
                                    strict=True):
            weights = getattr(cb, "best_weights", None)
            kept = weights is not None and len(weights) == len(best) > 0
            values.assign([float(getattr(cb, a)) for a in _CARRIED[type(cb)]] + [float(kept)])
            for variable, w in zip(best, weights if kept else [], strict=False):
                variable.assign(w)
        self.saved.assign(True)

    def apply(self) -> None:
        """Puts the restored state into the callbacks (after their own `on_train_begin`)."""
        for cb, values, best in zip(self.callbacks, self.values, self.best_weights,
                                    strict=True):
            *carried, kept = values.numpy().tolist()
            for attr, value in zip(_CARRIED[type(cb)], carried, strict=True):
                setattr(cb, attr, value if attr == "best" else int(value))
            if kept:
                cb.best_weights = [v.numpy() for v in best]


class ResumableFit(keras.callbacks.Callback):
    """Checkpoints model + optimizer every epoch into `directory` and tells where to resume.

    Args:
        directory: where `tf.train.CheckpointManager` keeps the last `max_to_keep` checkpoints.
        max_to_keep: checkpoints kept on disk.
        callbacks: the fit's other callbacks; the state of its `EarlyStopping` and
            `ReduceLROnPlateau` ones (counts, best value, best weights) is checkpointed too and
            put back when a resumed fit begins. Put this callback after them.

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

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 1,
                 callbacks: list | tuple = ()):
        super().__init__()
        self.directory = str(directory)
        self.max_to_keep = max_to_keep
        self.callbacks = list(callbacks)
        self.history: dict[str, list[float]] = {}  # every epoch's logs, restored ones included
        self.stopped = False  # whether the restored fit was ended early by a callback
        self._logs: list[dict] = []  # each epoch's logs, in order (a key may skip epochs)
        self._manager: tf.train.CheckpointManager | None = None
        self._state: _CallbackState | None = None
        self._restored_state = False  # whether to put the restored state into the callbacks

    def _manager_for(self, model: keras.Model) -> tf.train.CheckpointManager:
        if self._manager is None:
            parts = {"model": model, "optimizer": model.optimizer}
            if any(type(cb) in _CARRIED for cb in self.callbacks):  # else the layout of old
                self._state = parts["callbacks"] = _CallbackState(self.callbacks, model)
            self._manager = tf.train.CheckpointManager(tf.train.Checkpoint(**parts),
                                                       self.directory, self.max_to_keep)
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
        self._restored_state = self._state is not None and bool(self._state.saved.numpy())
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

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self._restored_state:  # the callbacks before this one have just reset themselves
            self._state.apply()

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
        atomic_write_text(Path(self.directory) / "epoch.json", json.dumps(  # (history: from logs)
            {"epoch": epoch + 1, "logs": self._logs, "stopped": self.stopped}))
        manager = self._manager_for(self.model)
        if self._state is not None:
            self._state.capture()
        manager.save(checkpoint_number=epoch + 1)


def fit_resumable(model: keras.Model, x: Any, *, epochs: int, directory: str | os.PathLike,
                  callbacks: list | None = None, log: Callable[[str], None] | None = None,
                  **fit_kwargs: Any) -> dict:
    """`model.fit(x, epochs=...)` that resumes from `directory` after an interruption.

    `log`, if given, is told when a fit resumes (from which epoch) or was already complete.
    A fit that a callback stopped (EarlyStopping, TerminateOnNaN) is complete: re-running it
    trains nothing, as the straight run. The state of `EarlyStopping` and `ReduceLROnPlateau`
    callbacks is checkpointed with each epoch, so a resumed fit stops and lowers its rate where
    the straight one would; other callbacks' own state starts afresh on a resume.
    Returns the history dict of every epoch, those of earlier (interrupted) fits included.
    """
    cb = ResumableFit(directory, callbacks=callbacks or ())
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
