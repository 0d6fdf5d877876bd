"""Held-out and representative slices of a model's dataset, shaped for the model's input.

Image models take float32 [0, 1] NHWC images; exporters keep the uint8 pixels (what a client
sends) and convert where needed. The held-out slice comes from the test split, the
representative slice (int8 calibration) from the training split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from tfkit.export.errors import ExportError

__all__ = ["ImageSlices", "image_slices", "fit_images"]


@dataclass(frozen=True)
class ImageSlices:
    """uint8 NHWC images at the model's size: `test_x`/`test_y` held out, `calibration` train."""

    dataset: str
    test_x: np.ndarray
    test_y: np.ndarray
    calibration: np.ndarray


def fit_images(x: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """uint8 images [N, h, w(, c)] → uint8 [N, H, W, C]: adds the channel axis, resizes."""
    if x.ndim == 3:
        x = x[..., None]
    height, width, channels = shape
    if x.shape[-1] != channels:
        raise ExportError(f"the data has images {list(x.shape[1:])} ({x.shape[-1]} channel(s)) "
                          f"but the model takes [{height}, {width}, {channels}] (H, W, C): is "
                          "the meta's \"dataset\" the one the model was trained on?")
    if x.shape[1:3] != (height, width):
        from tfkit.backend import tf

        resized = tf.image.resize(x, [height, width], antialias=True).numpy()
        x = np.clip(np.round(resized), 0, 255).astype(np.uint8)
    return x


def image_slices(meta: dict, shape: tuple[int, int, int], data_dir: str | os.PathLike | None,
                 test_size: int = 1000, calibration_size: int = 200, seed: int = 0
                 ) -> ImageSlices:
    """Loads `meta["dataset"]` via `tfkit.datasets.load` (embedded sets need no files).

    Args:
        meta: the model's meta; `dataset` names the data it was trained on.
        shape: the model's input (H, W, C).
        data_dir: folder with the dataset files (else `$TFKIT_DATA_DIR`).
        test_size: held-out examples (a seeded random sample of the test split).
        calibration_size: training examples for int8 calibration, drawn with `seed`.
        seed: seed of the held-out and calibration draws.
    """
    import tfkit.datasets as datasets

    name = meta.get("dataset")
    if not name:
        raise ExportError("the model's meta has no \"dataset\"; it is needed for the held-out "
                          "slice and int8 calibration: add e.g. \"dataset\": \"cifar10\" (a "
                          "tfkit.datasets name) to NAME.json beside NAME.keras, or convert a "
                          "model trained on other data in Python with "
                          "tfkit.export.convert(model, variant, calibration=...)")
    data = datasets.load(name, data_dir)
    if not isinstance(data, datasets.ImageDataset):
        raise ExportError(f"dataset {name!r} is not an image dataset")
    rng = np.random.default_rng(seed)
    calib = rng.choice(len(data.train), min(calibration_size, len(data.train)), replace=False)
    held_out = data.test.sample(test_size, seed)  # not the first n: CIFAR files are sorted
    return ImageSlices(name, fit_images(held_out.x, shape), held_out.y,
                       fit_images(data.train.x[np.sort(calib)], shape))
