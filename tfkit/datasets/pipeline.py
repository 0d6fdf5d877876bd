"""`tf.data` pipelines shared by the experiments."""

from __future__ import annotations

import numpy as np

from tfkit.backend import tf

__all__ = ["image_dataset", "to_float"]


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [0, 1], with a channel axis added to grayscale images."""
    x = images.astype(np.float32) / 255.0
    return x[..., None] if x.ndim == 3 else x


def image_dataset(x: np.ndarray, y: np.ndarray | None = None, batch_size: int = 128,
                  shuffle: bool = False, seed: int = 0, repeat: bool = False) -> tf.data.Dataset:
    """A batched `tf.data.Dataset` of float32 [0, 1] NHWC images (and int64 labels)."""
    xf = to_float(x) if x.dtype == np.uint8 else x.astype(np.float32)
    xf = xf[..., None] if xf.ndim == 3 else xf  # float grayscale [N, H, W] too
    ds = tf.data.Dataset.from_tensor_slices(xf if y is None else (xf, y.astype(np.int64)))
    if shuffle:
        ds = ds.shuffle(min(len(xf), 10_000), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
