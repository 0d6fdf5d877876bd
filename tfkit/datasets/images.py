"""MNIST, FEMNIST (with writer ids), CIFAR-10 and scikit-learn digits loaders.

Each loader looks in `data_dir`, then `$TFKIT_DATA_DIR`, then falls back to the standard
download (`keras.datasets`, TFF's `emnist`), then raises a `DataError` naming the file to put
where. File formats are those of `../shared/data/README.md`.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

import numpy as np

from tfkit.datasets.base import (
    DataError,
    ImageDataset,
    Split,
    check_array,
    load_npz,
    resolve_data_dir,
)

__all__ = ["load_mnist", "load_femnist", "load_cifar10", "load_digits", "FEMNIST_CLASSES",
           "CIFAR10_CLASSES"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
# FEMNIST labels: 0-9 digits, 10-35 upper-case A-Z, 36-61 lower-case a-z.
FEMNIST_CLASSES = tuple(string.digits + string.ascii_uppercase + string.ascii_lowercase)


def _missing(name: str, files: str, why: str, root: os.PathLike | None = None) -> DataError:
    where = f"no {files} in {str(root)!r}" if root is not None else "no local copy"
    return DataError(
        f"{name}: {where} and the download failed ({why}). Put {files} in a folder and "
        f"pass data_dir=... (CLI: --data-dir) or set TFKIT_DATA_DIR.")


def _pair(name: str, root: os.PathLike | None, files: tuple[str, str]) -> bool:
    """Whether `root` holds both files of a train/test pair; a DataError naming the missing one
    when it holds only one (no download is tried then: the copy there is incomplete)."""
    if root is None:
        return False
    present = [(Path(root) / f).exists() for f in files]
    if all(present):
        return True
    if any(present):
        have, lack = (files[0], files[1]) if present[0] else (files[1], files[0])
        raise DataError(f"{name}: {str(root)!r} has {have} but not {lack}; put both files "
                        "there")
    return False


def _split(name: str, x: np.ndarray, y: np.ndarray, high: int, groups=None,
           keys: tuple[str, str] | None = None) -> Split:
    """A checked Split; `name` is the dataset split, or the file it was read from with the
    `keys` of its image and label arrays (so an error names the file and array)."""
    what = (f": array {keys[0]!r}", f": array {keys[1]!r}") if keys else (" images", " labels")
    x = check_array(f"{name}{what[0]}", x, np.uint8, 0, 255)
    y = check_array(f"{name}{what[1]}", np.asarray(y).reshape(-1), np.int64, 0, high)
    if len(x) != len(y):
        raise DataError(f"{name}: {len(x)} images but {len(y)} labels")
    if groups is not None and len(groups) != len(x):
        raise DataError(f"{name}: {len(x)} images but {len(groups)} user (writer) ids")
    return Split(x, y, groups)


def load_mnist(data_dir: str | os.PathLike | None = None, download: bool = True) -> ImageDataset:
    """MNIST: 60,000 train / 10,000 test uint8 28x28 images, labels 0-9."""
    root = resolve_data_dir(data_dir)
    if root is not None and (root / "mnist.npz").exists():
        path = root / "mnist.npz"
        a = load_npz(path, {"x_train": (28, 28), "y_train": (), "x_test": (28, 28),
                            "y_test": ()})
        return ImageDataset("mnist", _split(str(path), a["x_train"], a["y_train"], 9,
                                            keys=("x_train", "y_train")),
                            _split(str(path), a["x_test"], a["y_test"], 9,
                                   keys=("x_test", "y_test")),
                            10, tuple(string.digits), str(path))
    elif download:
        try:
            from tfkit.backend import keras

            (xtr, ytr), (xte, yte) = keras.datasets.mnist.load_data()
        except Exception as e:
            raise _missing("mnist", "mnist.npz", f"{type(e).__name__}: {e}", root) from None
        source = "keras.datasets.mnist"
    else:
        raise _missing("mnist", "mnist.npz", "download disabled", root)
    return ImageDataset("mnist", _split("mnist train", xtr, ytr, 9),
                        _split("mnist test", xte, yte, 9), 10, tuple(string.digits), source)


def load_cifar10(data_dir: str | os.PathLike | None = None, download: bool = True
                 ) -> ImageDataset:
    """CIFAR-10: uint8 32x32x3 images, labels 0-9 (the shared copy has a 20,000 train subset)."""
    root = resolve_data_dir(data_dir)
    if _pair("cifar10", root, ("cifar10_train.npz", "cifar10_test.npz")):
        splits = []
        for split in ("train", "test"):
            path, keys = root / f"cifar10_{split}.npz", (f"x_{split}", f"y_{split}")
            a = load_npz(path, {keys[0]: (32, 32, 3), keys[1]: (1,)})
            splits.append(_split(str(path), a[keys[0]], a[keys[1]], 9, keys=keys))
        return ImageDataset("cifar10", *splits, 10, CIFAR10_CLASSES,
                            str(root / "cifar10_{train,test}.npz"))
    elif download:
        try:
            from tfkit.backend import keras

            (xtr, ytr), (xte, yte) = keras.datasets.cifar10.load_data()
        except Exception as e:
            raise _missing("cifar10", "cifar10_train.npz and cifar10_test.npz",
                           f"{type(e).__name__}: {e}", root) from None
        source = "keras.datasets.cifar10"
    else:
        raise _missing("cifar10", "cifar10_train.npz and cifar10_test.npz", "download disabled",
                       root)
    return ImageDataset("cifar10", _split("cifar10 train", xtr, ytr, 9),
                        _split("cifar10 test", xte, yte, 9), 10, CIFAR10_CLASSES, source)


def _femnist_from_tff() -> tuple[Split, Split]:
    """Downloads FEMNIST through TFF (3,400 writers) and converts it to MNIST convention."""
    import tensorflow_federated as tff

    splits = []
    for cd in tff.simulation.datasets.emnist.load_data(only_digits=False):
        xs, ys, us = [], [], []
        for cid in cd.client_ids:
            for ex in cd.create_tf_dataset_for_client(cid).as_numpy_iterator():
                # TFF pixels are floats with 1.0 = white background; tfkit uses white on black.
                xs.append(np.round((1.0 - ex["pixels"]) * 255).astype(np.uint8))
                ys.append(int(ex["label"]))
                us.append(cid)
        splits.append(Split(np.stack(xs), np.asarray(ys, np.int64), np.asarray(us)))
    return splits[0], splits[1]


def load_femnist(data_dir: str | os.PathLike | None = None, download: bool = True
                 ) -> ImageDataset:
    """FEMNIST: 62 classes (digits, A-Z, a-z) with writer ids in `split.groups`."""
    root = resolve_data_dir(data_dir)
    if _pair("femnist", root, ("femnist_train.npz", "femnist_test.npz")):
        parts = []
        for split in ("train", "test"):
            path = root / f"femnist_{split}.npz"
            a = load_npz(path, {"x": (28, 28), "y": (), "user": ()})
            users = np.asarray(a["user"]).astype(str)
            parts.append(_split(str(path), a["x"], a["y"], 61, users, keys=("x", "y")))
        train, test = parts
        source = str(root / "femnist_{train,test}.npz")
    elif download:
        try:
            train, test = _femnist_from_tff()
        except Exception as e:
            raise _missing("femnist", "femnist_train.npz and femnist_test.npz",
                           f"{type(e).__name__}: {e}", root) from None
        source = "tff.simulation.datasets.emnist"
    else:
        raise _missing("femnist", "femnist_train.npz and femnist_test.npz", "download disabled",
                       root)
    return ImageDataset("femnist", train, test, 62, FEMNIST_CLASSES, source)


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> ImageDataset:
    """scikit-learn's 1,797 real 8x8 handwritten digits (embedded: no download), as uint8 0-255.

    The train/test split is stratified and fixed by `seed`.
    """
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = np.clip(bunch.images * 16.0, 0, 255).astype(np.uint8)  # 0..16 -> 0..255
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        test_idx.extend(rng.choice(idx, int(round(len(idx) * test_fraction)), replace=False))
    test_mask = np.zeros(len(y), bool)
    test_mask[test_idx] = True
    return ImageDataset("digits", Split(x[~test_mask], y[~test_mask]),
                        Split(x[test_mask], y[test_mask]), 10, tuple(string.digits),
                        "embedded: sklearn.datasets.load_digits")
