"""tinyshakespeare (character level) and an embedded English text for offline demos."""

from __future__ import annotations

import os

import numpy as np

from tfkit.datasets.base import DataError, TextDataset, resolve_data_dir

__all__ = ["load_tinyshakespeare", "load_embedded_text", "next_token_windows"]

TINYSHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt")


def _split_text(name: str, text: str, test_fraction: float, source: str) -> TextDataset:
    if len(text) < 1000:
        raise DataError(f"{name}: only {len(text)} characters of text ({source}); "
                        "the file looks truncated")
    cut = int(len(text) * (1.0 - test_fraction))
    return TextDataset(name, text[:cut], text[cut:], source, tuple(sorted(set(text))))


def load_tinyshakespeare(data_dir: str | os.PathLike | None = None, download: bool = True,
                         test_fraction: float = 0.1) -> TextDataset:
    """tinyshakespeare (1,115,394 characters); the last `test_fraction` is held out."""
    root = resolve_data_dir(data_dir)
    if root is not None and (root / "tinyshakespeare.txt").exists():
        path = root / "tinyshakespeare.txt"
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{path} is not UTF-8 text ({e})") from None
        return _split_text("tinyshakespeare", text, test_fraction, str(path))
    if not download:
        raise DataError("tinyshakespeare: no local copy; put tinyshakespeare.txt in a folder "
                        "and pass data_dir=... or set TFKIT_DATA_DIR")
    try:
        from tfkit.backend import keras

        path = keras.utils.get_file("tinyshakespeare.txt", TINYSHAKESPEARE_URL)
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except Exception as e:
        raise DataError(f"tinyshakespeare: download failed ({type(e).__name__}: {e}); put "
                        "tinyshakespeare.txt in a folder and pass data_dir=... or set "
                        "TFKIT_DATA_DIR") from None
    return _split_text("tinyshakespeare", text, test_fraction, TINYSHAKESPEARE_URL)


def load_embedded_text(test_fraction: float = 0.1) -> TextDataset:
    """Real English prose that ships inside scikit-learn (its dataset descriptions), ~60k chars.

    Offline stand-in for tinyshakespeare in demos and tests.
    """
    import sklearn.datasets as skd

    descrs = sorted((os.path.dirname(skd.__file__) + "/descr/" + f)
                    for f in os.listdir(os.path.dirname(skd.__file__) + "/descr")
                    if f.endswith(".rst"))
    text = "\n".join(open(p, encoding="utf-8").read() for p in descrs)
    return _split_text("embedded-text", text, test_fraction, "embedded: sklearn dataset docs")


def next_token_windows(ids: np.ndarray, count: int, length: int, seed: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """`count` random windows of `length` ids and the same windows shifted by one (the
    next-token targets), starting at positions drawn from `seed`.

    Example:
        >>> x, y = next_token_windows(np.arange(100), count=4, length=8, seed=0)
        >>> x.shape, bool((y == x + 1).all())
        ((4, 8), True)
    """
    if len(ids) < length + 2:
        raise DataError(f"text of {len(ids)} tokens is too short for windows of {length}")
    starts = np.random.default_rng(seed).integers(0, len(ids) - length - 1, count)
    x = np.stack([ids[s:s + length] for s in starts])
    y = np.stack([ids[s + 1:s + length + 1] for s in starts])
    return x, y
