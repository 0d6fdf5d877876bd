"""Real-data loaders, `tf.data` pipelines and client partitioners.

    >>> import tfkit.datasets as d
    >>> d.load("digits").train.x.shape
    (1347, 8, 8)

`load(name, data_dir=None)` resolves data as: explicit `data_dir` -> `$TFKIT_DATA_DIR` -> the
standard download -> a `DataError` that says where to put which file.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from tfkit.datasets import partition
from tfkit.datasets.base import DataError, ImageDataset, Split, TextDataset
from tfkit.datasets.images import (
    CIFAR10_CLASSES,
    FEMNIST_CLASSES,
    load_cifar10,
    load_digits,
    load_femnist,
    load_mnist,
)
from tfkit.datasets.text import load_embedded_text, load_tinyshakespeare, next_token_windows

__all__ = ["load", "names", "IMAGE_SIDES", "DataError", "ImageDataset", "TextDataset", "Split",
           "partition",
           "load_mnist", "load_femnist", "load_cifar10", "load_digits", "load_tinyshakespeare",
           "load_embedded_text", "next_token_windows", "CIFAR10_CLASSES", "FEMNIST_CLASSES"]

_LOADERS: dict[str, Callable[..., ImageDataset | TextDataset]] = {
    "mnist": load_mnist,
    "femnist": load_femnist,
    "cifar10": load_cifar10,
    "tinyshakespeare": load_tinyshakespeare,
}
# The image datasets and their (square) image side in pixels: what image-only tools accept,
# checked before a dataset is loaded (or downloaded).
IMAGE_SIDES: dict[str, int] = {"mnist": 28, "femnist": 28, "cifar10": 32, "digits": 8}
_EMBEDDED: dict[str, Callable[[], ImageDataset | TextDataset]] = {
    "digits": load_digits,
    "embedded-text": load_embedded_text,
}


def names() -> list[str]:
    return sorted([*_LOADERS, *_EMBEDDED])


def load(name: str, data_dir: str | os.PathLike | None = None, download: bool = True
         ) -> ImageDataset | TextDataset:
    """Loads dataset `name` (see `names()`)."""
    if name in _EMBEDDED:
        return _EMBEDDED[name]()
    if name not in _LOADERS:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(names())}")
    return _LOADERS[name](data_dir=data_dir, download=download)
