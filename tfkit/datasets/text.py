"""tinyshakespeare (character level) and an embedded English text for offline demos."""

from __future__ import annotations

import os

from tfkit.datasets.base import DataError, TextDataset, resolve_data_dir

__all__ = ["load_tinyshakespeare", "load_embedded_text"]

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
