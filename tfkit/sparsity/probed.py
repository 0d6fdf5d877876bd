"""Training with sparsity probes: fit resumably while a `SparsityMonitor` records the nonzero
fraction per MLP layer over steps, then probe the trained model once more per split.

Example:
    >>> import numpy as np
    >>> from tfkit.models import ViT
    >>> vit = ViT(image_size=8, patch_size=4, num_layers=1, hidden_dim=16, num_heads=2,
    ...           intermediate_dim=32, channels=1, activation="relu", num_classes=3)
    >>> x = np.random.rand(8, 8, 8, 1).astype("float32")
    >>> r = fit_probed(compile_classifier(vit, 1e-3), x, {"test": x}, "checkpoints/vit", 1,
    ...                every_n_steps=1, y=np.zeros(8, "int32"), batch_size=4, verbose=0)
    >>> sorted(r), len(r["test"])  # one MLP layer
    (['history', 'over_training', 'test'], 1)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tfkit.backend import keras
from tfkit.sparsity.callback import SparsityMonitor
from tfkit.sparsity.measure import nonzero_fraction
from tfkit.training import fit_resumable

__all__ = ["compile_classifier", "fit_probed", "sparsity_records"]


def compile_classifier(model: keras.Model, learning_rate: float) -> keras.Model:
    """Compiles `model` (logits out, integer labels) with Adam and an accuracy metric."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def fit_probed(model: keras.Model, data: Any, probes: dict[str, Any],
               directory: str | os.PathLike, epochs: int, every_n_steps: int,
               log: Callable[[str], None] | None = None, **fit_kwargs: Any) -> dict:
    """`fit_resumable(model, data, ...)` with a `SparsityMonitor` on `probes` (all batches).

    Args:
        model: a compiled model with `FeedForward` MLPs.
        data: training inputs (a dataset, or x with `y=` in `fit_kwargs`).
        probes: {split: inputs} probed every `every_n_steps` optimizer steps and at the end.
        directory: the resumable checkpoint folder.
        epochs: training epochs.
        every_n_steps: probe interval in optimizer steps.
        log: told when the fit resumes from `directory` (see `fit_resumable`).
        **fit_kwargs: passed to `model.fit` (e.g. `y`, `batch_size`, `verbose`).

    Returns:
        {"history": fit history, "over_training": the monitor's probes, <split>: nonzero
        fraction per layer of the trained model on that split}.
    """
    monitor = SparsityMonitor(probes, every_n_steps=every_n_steps, max_batches=None,
                              history_path=Path(directory) / "sparsity_probes.json")
    history = fit_resumable(model, data, epochs=epochs, directory=directory,
                            callbacks=[monitor], log=log, **fit_kwargs)
    # a fit that had finished before ran no probes: its saved ones are the record
    over_training = monitor.history or monitor.saved_history() or []
    return {"history": history, "over_training": over_training,
            **{split: list(nonzero_fraction(model, x).values()) for split, x in probes.items()}}


def sparsity_records(model_name: str, result: dict, splits: tuple[str, ...] = ("train", "test")
                     ) -> tuple[list[dict], dict]:
    """The `sparsity` rows (one per split) and the `sparsity_over_training` entry of one trained
    model (`result` has `width`, `depth`, `over_training` and a per-layer list per split)."""
    key = {"model": model_name, "width": result["width"], "depth": result["depth"]}
    rows = [{**key, "split": split, "nonzero_fraction_per_layer": result[split]}
            for split in splits]
    return rows, {**key, "probes": result["over_training"]}
