"""A Keras callback that tracks MLP activation sparsity over training steps."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tfkit.backend import keras, tf
from tfkit.runs import atomic_write_text
from tfkit.sparsity.measure import nonzero_fraction

__all__ = ["SparsityMonitor"]


class SparsityMonitor(keras.callbacks.Callback):
    """Measures the nonzero fraction per MLP layer every `every_n_steps` training steps.

    Each measurement appends `{"step": s, "split": name, "nonzero_fraction_per_layer": [...]}`
    to `self.history` and, with `log_dir`, writes TensorBoard scalars
    `sparsity/<split>/<layer>` and `sparsity/<split>/mean`.

    Args:
        data: {split name: inputs} to probe, e.g. {"train": x_train[:256], "test": x_test[:256]}
            (arrays, (x, y) tuples or tf.data datasets; keep them small: one probe per call).
        every_n_steps: probe interval in optimizer steps (also probes at step 0 and at the end).
            With `compile(steps_per_execution=n)` the model can only be probed between
            executions: after each one that passed a multiple, labelled with its real step.
        log_dir: TensorBoard log folder (None = no summaries).
        pad_id: token id to exclude (see `nonzero_fraction`).
        max_batches: batches of each split per probe.
        history_path: JSON file that keeps `history` across interrupted and resumed fits: each
            probe rewrites it, and a fit resuming at step s reloads its probes before s.

    Example:
        >>> from tfkit.models import ViT
        >>> vit = ViT(image_size=8, patch_size=4, num_layers=2, hidden_dim=16, num_heads=2,
        ...           intermediate_dim=32, num_classes=3, channels=1, activation="relu")
        >>> vit.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        >>> x, y = np.random.rand(16, 8, 8, 1).astype("float32"), np.arange(16) % 3
        >>> monitor = SparsityMonitor({"train": x[:8]}, every_n_steps=2)
        >>> _ = vit.fit(x, y, batch_size=4, callbacks=[monitor], verbose=0)
        >>> [(p["step"], len(p["nonzero_fraction_per_layer"])) for p in monitor.history]
        [(0, 2), (2, 2), (4, 2)]
    """

    def __init__(self, data: dict[str, Any], every_n_steps: int = 100,
                 log_dir: str | os.PathLike | None = None, pad_id: int | None = None,
                 max_batches: int | None = 2, history_path: str | os.PathLike | None = None):
        super().__init__()
        if int(every_n_steps) < 1:
            raise ValueError(f"SparsityMonitor needs every_n_steps >= 1, got {every_n_steps}")
        self.data = data
        self.every_n_steps = int(every_n_steps)
        self.log_dir = None if log_dir is None else str(log_dir)
        self.pad_id = pad_id
        self.max_batches = max_batches
        self.history_path = None if history_path is None else str(history_path)
        self.history: list[dict] = []
        self._step = 0
        self._last = -1
        self._batch_begin: int | None = None
        self._writer = None

    def _probe(self) -> None:
        if self._step == self._last:
            return
        self._last = self._step
        if self.log_dir is not None and self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        for split, inputs in self.data.items():
            fractions = nonzero_fraction(self.model, inputs, pad_id=self.pad_id,
                                         max_batches=self.max_batches)
            values = list(fractions.values())
            self.history.append({"step": self._step, "split": split, "layers": list(fractions),
                                 "nonzero_fraction_per_layer": values})
            if self._writer is not None:
                with self._writer.as_default(step=self._step):
                    for name, value in fractions.items():
                        tf.summary.scalar(f"sparsity/{split}/{name}", value)
                    tf.summary.scalar(f"sparsity/{split}/mean", sum(values) / len(values))
        if self._writer is not None:
            self._writer.flush()
        if self.history_path is not None:
            Path(self.history_path).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.history_path, json.dumps(self.history))

    def saved_history(self) -> list[dict] | None:
        """The probes kept at `history_path` by an earlier (or interrupted) fit; None if none."""
        if self.history_path is None or not Path(self.history_path).exists():
            return None
        return json.loads(Path(self.history_path).read_text())

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._step = int(self.model.optimizer.iterations.numpy())
        earlier = self.saved_history()  # before an interruption
        resumed = earlier is not None
        if resumed:
            self.history = [r for r in earlier if r["step"] < self._step]
        if not resumed or self._step % self.every_n_steps == 0:  # as an uninterrupted fit
            self._probe()

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._batch_begin = batch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        # Keras calls the batch hooks once per execution: with compile(steps_per_execution=n)
        # `batch` is the last of n steps, so count optimizer steps from the begin/end pair and
        # probe after every execution that passed a multiple of every_n_steps
        before = self._step
        first = batch if self._batch_begin is None else self._batch_begin
        self._step += max(1, batch - first + 1)
        self._batch_begin = None
        if self._step // self.every_n_steps > before // self.every_n_steps:
            self._probe()

    def on_train_end(self, logs: dict | None = None) -> None:
        self._probe()
