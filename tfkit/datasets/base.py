"""Dataset containers, resolution of where data lives, and validation errors."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfkit.errors import TfkitError

__all__ = ["DataError", "Split", "ImageDataset", "TextDataset", "resolve_data_dir",
           "load_npz", "check_array"]

ENV_VAR = "TFKIT_DATA_DIR"


class DataError(TfkitError, RuntimeError):
    """Data is missing, truncated or not in the documented format."""


@dataclass(frozen=True)
class Split:
    """Images `x` (uint8, N x H x W [x C]), integer labels `y` (N,), optional `groups` (N,)
    such as FEMNIST writer ids."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def sample(self, n: int, seed: int = 0) -> Split:
        """A seeded random subset of `n` examples (all when n ≥ len). Use it rather than the
        first n: some copies are sorted by class (the shared CIFAR-10 files are)."""
        if n < 0:
            raise ValueError(f"sample(n): n must be >= 0, got {n}")
        if n >= len(self):
            return self
        return self.take(np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False)))

    def take(self, indices: np.ndarray) -> Split:
        g = None if self.groups is None else self.groups[indices]
        return Split(self.x[indices], self.y[indices], g)

    def __repr__(self) -> str:
        g = "" if self.groups is None else f", groups={len(np.unique(self.groups))} distinct"
        span = f" in [{self.y.min()}, {self.y.max()}]" if self.y.size else ""
        return f"Split(x={self.x.shape} {self.x.dtype}, y={self.y.shape} {self.y.dtype}{span}{g})"


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image dataset with a train and a test split."""

    name: str
    train: Split
    test: Split
    num_classes: int
    class_names: tuple[str, ...] = ()
    source: str = ""  # the file or download it came from, or "embedded"

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def __repr__(self) -> str:
        return (f"ImageDataset({self.name!r}, num_classes={self.num_classes}, "
                f"source={self.source!r},\n  train={self.train!r},\n  test={self.test!r})")


@dataclass(frozen=True)
class TextDataset:
    """A character-level text corpus split into train and validation text."""

    name: str
    train: str
    test: str
    source: str = ""
    vocabulary: tuple[str, ...] = field(default=())

    @property
    def vocab_size(self) -> int:
        """Token ids of `encode`: the characters plus id 0 for padding."""
        return len(self.vocabulary) + 1

    def encode(self, text: str) -> np.ndarray:
        """Character ids (int32), 1-based in `vocabulary` order; id 0 is left for padding."""
        index = {c: i + 1 for i, c in enumerate(self.vocabulary)}
        return np.array([index[c] for c in text], np.int32)

    def __repr__(self) -> str:
        return (f"TextDataset({self.name!r}, train={len(self.train):,} chars, "
                f"test={len(self.test):,} chars, vocabulary={len(self.vocabulary)}, "
                f"source={self.source!r})")


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """Explicit `data_dir`, else `$TFKIT_DATA_DIR`, else None (meaning: download)."""
    if data_dir:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise DataError(f"data_dir {str(path)!r} is not a directory")
        return path
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataError(f"${ENV_VAR}={env!r} is not a directory")
        return path
    return None


def load_npz(path: Path, keys: dict[str, tuple]) -> dict[str, np.ndarray]:
    """Loads the arrays `keys` from an .npz file with readable errors for bad files.

    `keys` maps array name -> expected trailing shape (the leading N is free), e.g.
    {"x_train": (28, 28), "y_train": ()}.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise DataError(f"{path} lacks arrays {missing}; it has {archive.files}")
            arrays = {k: archive[k] for k in keys}
    except DataError:
        raise
    except Exception as e:  # zipfile.BadZipFile, EOFError, ValueError ... on truncated files
        raise DataError(f"{path} is not a readable .npz archive ({type(e).__name__}: {e}); "
                        "re-download or re-copy it") from None
    for k, trailing in keys.items():
        if tuple(arrays[k].shape[1:]) != tuple(trailing):
            raise DataError(f"{path}: array {k!r} has shape {arrays[k].shape}, expected "
                            f"(N, {', '.join(map(str, trailing))})".replace(", )", ")"))
    return arrays


def check_array(name: str, a: np.ndarray, dtype: type, low: int | None = None,
                high: int | None = None) -> np.ndarray:
    """Casts integer arrays to `dtype` after checking their value range (any other dtype, e.g.
    floats or strings, is a DataError)."""
    if a.dtype != dtype and not np.issubdtype(a.dtype, np.integer) and dtype is not str:
        raise DataError(f"{name}: dtype {a.dtype}, expected integers")
    if a.size and low is not None and (a.min() < low or a.max() > high):
        raise DataError(f"{name}: values in [{a.min()}, {a.max()}], expected [{low}, {high}]")
    return a.astype(dtype) if a.dtype != dtype else a
