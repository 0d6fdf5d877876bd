"""FedMD data: public set, per-party private `tff.simulation.datasets.ClientData`, test set.

Two scenarios:

* `femnist_letters`: the paper's. Public = MNIST digits (labels 0-9); private = FEMNIST letters
  a-f with both cases merged (labels 10-15), dealt `balanced` (every party gets
  `samples_per_class` of each of the 6 letters: the paper's 10 x 6 x 3) or by `writers`
  (non-iid: writers dealt to parties, no writer split); test = FEMNIST test letters a-f.
* `digits_split`: embedded, for demos and tests. scikit-learn's 8x8 digits, upscaled to 16x16;
  public = digits 0-4, private and test = digits 5-9 (the same "public classes differ from the
  private task" structure as MNIST -> FEMNIST letters).
"""

from __future__ import annotations

import collections
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from tfkit.datasets import load, partition
from tfkit.datasets.base import DataError
from tfkit.federated.fedmd.party import whole_labels

__all__ = ["FedMDData", "make_client_data", "client_arrays", "femnist_letters", "digits_split",
           "LETTERS"]

LETTERS = "abcdef"  # FedMD-FEMNIST's private classes (upper and lower case merged)


@dataclass(frozen=True)
class FedMDData:
    """Public images/labels, private ClientData (ids `party0`...), test images/labels."""

    public_x: np.ndarray
    public_y: np.ndarray
    private: Any  # tff.simulation.datasets.ClientData with elements {"x": image, "y": label}
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    private_classes: tuple[int, ...]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.public_x.shape[1:])

    @property
    def party_ids(self) -> list[str]:
        return sorted(self.private.client_ids, key=lambda c: int(c.removeprefix("party")))


def make_client_data(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> Any:
    """`tff.simulation.datasets.ClientData` with one client `party{i}` per (x, y) pair."""
    import tensorflow_federated as tff

    clients = {}
    for i, (x, y) in enumerate(parts):
        x, y = np.asarray(x), np.asarray(y)
        if not whole_labels(y):  # a cast to int64 would truncate 1.5 to 1 silently
            raise ValueError(f"make_client_data: party{i}'s labels must be integer class ids, "
                             f"got {y.dtype} labels such as {y.flat[0]!r}")
        y = y.astype(np.int64)
        if len(x) != len(y):
            raise ValueError(f"make_client_data: party{i} has {len(x)} images but {len(y)} "
                             "labels; give one label per image")
        clients[f"party{i}"] = collections.OrderedDict(x=x, y=y)
    return tff.simulation.datasets.TestClientData(clients)


def client_arrays(client_data: Any, client_id: str, x_key: str = "x", y_key: str = "y"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One client's examples as numpy arrays (x, y); empty arrays for a client with none.

    Elements are dicts (`x_key` and `y_key` name the images and labels: "x"/"y" as
    `make_client_data` writes them) or `(image, label)` pairs.
    """
    ds = client_data.create_tf_dataset_for_client(client_id)
    spec = ds.element_spec
    if isinstance(spec, tuple) and len(spec) == 2:  # (image, label) pairs
        keys: tuple[Any, Any] = (0, 1)
    elif hasattr(spec, "keys") and x_key in spec and y_key in spec:
        keys = (x_key, y_key)
    else:
        found = list(spec.keys()) if hasattr(spec, "keys") else spec
        raise ValueError(f"client_arrays: client {client_id!r}'s elements are {found}; expected "
                         f"dicts with keys {x_key!r} and {y_key!r} (pass x_key=..., y_key=... "
                         "naming the images and labels) or (image, label) pairs")
    batches = list(ds.batch(100_000).as_numpy_iterator())
    if not batches:  # an empty client: arrays of its element shapes with no rows
        return tuple(np.zeros((0, *spec[k].shape), spec[k].dtype.as_numpy_dtype) for k in keys)
    return tuple(np.concatenate([b[k] for b in batches]) for k in keys)


def _letters(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mask of FEMNIST letters a-f (either case) and their merged labels 10..15."""
    upper = (y >= 10) & (y < 10 + len(LETTERS))
    lower = (y >= 36) & (y < 36 + len(LETTERS))
    merged = np.where(upper, y - 10, y - 36) + 10
    return upper | lower, merged.astype(np.int64)


def femnist_letters(data_dir: str | os.PathLike | None = None,
                    setting: Literal["balanced", "writers"] = "balanced", num_parties: int = 10,
                    samples_per_class: int = 3, public_size: int | None = None, seed: int = 0
                    ) -> FedMDData:
    """The paper's MNIST -> FEMNIST letters a-f scenario (see the module docstring)."""
    mnist, femnist = load("mnist", data_dir), load("femnist", data_dir)
    public_x, public_y = mnist.train.x, mnist.train.y
    if public_size is not None and public_size < len(public_x):
        keep = np.sort(np.random.default_rng(seed).choice(len(public_x), public_size, False))
        public_x, public_y = public_x[keep], public_y[keep]
    mask, labels = _letters(femnist.train.y)
    x, y, writers = femnist.train.x[mask], labels[mask], femnist.train.groups[mask]
    classes = tuple(range(10, 10 + len(LETTERS)))
    if setting == "balanced":
        parts = partition.by_class(y, num_parties, classes, samples_per_class, seed)
    elif setting == "writers":
        parts = partition.by_group(writers, num_parties, seed)
    else:
        raise DataError(f"setting must be 'balanced' or 'writers', got {setting!r}")
    test_mask, test_labels = _letters(femnist.test.y)
    return FedMDData(public_x, public_y, make_client_data([(x[p], y[p]) for p in parts]),
                     femnist.test.x[test_mask], test_labels[test_mask], 10 + len(LETTERS),
                     classes)


def _upscale(x: np.ndarray, factor: int) -> np.ndarray:
    return x.repeat(factor, axis=1).repeat(factor, axis=2)


def digits_split(num_parties: int = 4, samples_per_class: int = 5, seed: int = 0) -> FedMDData:
    """Embedded scenario: public digits 0-4, private/test digits 5-9 (16x16 images)."""
    digits = load("digits")
    tr_x, tr_y = _upscale(digits.train.x, 2), digits.train.y
    te_x, te_y = _upscale(digits.test.x, 2), digits.test.y
    public = tr_y < 5
    classes = tuple(range(5, 10))
    private_idx = np.flatnonzero(~public)
    parts = partition.by_class(tr_y[private_idx], num_parties, classes, samples_per_class, seed)
    parts = [private_idx[p] for p in parts]
    test = te_y >= 5
    return FedMDData(tr_x[public], tr_y[public],
                     make_client_data([(tr_x[p], tr_y[p]) for p in parts]),
                     te_x[test], te_y[test], 10, classes)
