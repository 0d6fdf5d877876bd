"""Run directories: atomic writes, resumable stages, results and report.

Every experiment writes into one directory:

    config.json      the resolved config
    results.json     the numbers, machine-readable
    report.md        our numbers beside the paper's, with PNG plots next to it
    checkpoints/     model weights / optimizer state, per stage
    stages/NAME.json the result of each finished stage (the resume record)

`RunDir.stage(name, fn)` runs `fn()` once: its JSON result is stored, and re-running into the same
directory returns the stored result without calling `fn` again. An interrupted stage restarts;
stages that train use `tfkit.training.ResumableFit` to continue from their last checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tfkit.errors import TfkitError

__all__ = ["RunDir", "RunFileError", "atomic_write_bytes", "atomic_write_text", "write_json",
           "read_json", "markdown_table", "unwritable_reason"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes `data` to `path` through a temp file in the same folder plus `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable(obj: Any) -> Any:
    """Converts numpy scalars/arrays and non-finite floats into plain JSON values."""
    if hasattr(obj, "tolist"):
        return _jsonable(obj.tolist())
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")


def unwritable_reason(folder: str | os.PathLike) -> str | None:
    """Why `folder` (created if absent) could not be written, or None: a file on its path, or
    its nearest existing folder not writable. For commands that check their --out before any
    work."""
    folder = Path(folder).absolute()
    for existing in (folder, *folder.parents):
        if existing.exists():
            break
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


class RunFileError(TfkitError, ValueError):
    """A file of a run directory (a stage record, config.json ...) is not what tfkit wrote:
    truncated, or edited by hand. The message names it."""


def read_json(path: str | os.PathLike, expect: type | None = None, keys: Sequence[str] = (),
              remedy: str = "delete it to recompute") -> Any:
    """The JSON in `path`; with `expect` (e.g. dict) and `keys`, checks its type and keys.
    Raises RunFileError (a ValueError) naming the file, and `remedy`, when it does not parse
    or fit."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunFileError(f"{path} is not valid JSON ({e}); {remedy}") from None
    if expect is not None and not isinstance(value, expect):
        raise RunFileError(f"{path} holds a JSON {type(value).__name__}, not the "
                           f"{expect.__name__} tfkit writes; {remedy}")
    missing = [k for k in keys if k not in value]
    if missing:
        raise RunFileError(f"{path} lacks {', '.join(map(repr, missing))}; {remedy}")
    return value


def _fmt(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "" if value is None else str(value)


def markdown_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], digits: int = 3) -> str:
    """A GitHub-markdown table; floats get `digits` decimals."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(v, digits) for v in row) + " |")
    return "\n".join(lines) + "\n"


class RunDir:
    """One experiment's output directory. See the module docstring for the layout."""

    def __init__(self, path: str | os.PathLike, log: Callable[[str], None] | None = print):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise TfkitError(f"{self.path} is a file, not a run directory; pass another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints = self.path / "checkpoints"
        self.checkpoints.mkdir(exist_ok=True)
        self._stages = self.path / "stages"
        self._stages.mkdir(exist_ok=True)
        self._log = log
        self._t0 = time.time()

    def log(self, message: str) -> None:
        """Prints a progress line prefixed with the elapsed time."""
        if self._log is not None:
            self._log(f"[{time.time() - self._t0:7.1f}s] {message}")

    def file(self, name: str) -> Path:
        return self.path / name

    def checkpoint_dir(self, name: str) -> Path:
        d = self.checkpoints / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def write_json(self, name: str, obj: Any) -> Path:
        return write_json(self.path / name, obj)

    def write_text(self, name: str, text: str) -> Path:
        return atomic_write_text(self.path / name, text)

    def read_json(self, name: str) -> Any:
        return read_json(self.path / name)

    def save_figure(self, fig: Any, name: str) -> str:
        """Saves a matplotlib figure atomically as PNG; returns the file name for report links."""
        import io

        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        atomic_write_bytes(self.path / name, buf.getvalue())
        return name

    def save_model(self, model: Any, name: str, meta: dict | None = None) -> Path:
        """Saves a Keras model as `models/NAME.keras` (atomically) with `models/NAME.json`.

        `meta` describes it for exporters and cards, e.g. {"kind": "image_classifier",
        "dataset": "cifar10", "input_shape": [32, 32, 3], "class_names": [...],
        "metrics": {"accuracy": 0.71}, "primary": True}.
        """
        folder = self.path / "models"
        folder.mkdir(exist_ok=True)
        tmp = folder / f".{name}.tmp.keras"
        model.save(tmp)
        os.replace(tmp, folder / f"{name}.keras")
        write_json(folder / f"{name}.json", {"name": name, **(meta or {})})
        return folder / f"{name}.keras"

    def load_model(self, name: str) -> Any:
        """Loads `models/NAME.keras` saved by `save_model` (tfkit layers registered)."""
        import tfkit.layers  # noqa: F401  (registers tfkit's serializable layers)
        from tfkit.backend import keras

        path = self.path / "models" / f"{name}.keras"
        if not path.exists():
            saved = sorted(p.stem for p in (self.path / "models").glob("*.keras"))
            raise FileNotFoundError(f"{path} does not exist; models here: {saved}")
        return keras.models.load_model(path)

    def is_done(self, stage: str) -> bool:
        return (self._stages / f"{stage}.json").exists()

    def stage(self, name: str, fn: Callable[[], Any]) -> Any:
        """Runs `fn` unless stage `name` already finished in this directory; returns its result."""
        record = self._stages / f"{name}.json"
        if record.exists():
            self.log(f"stage {name}: done earlier, reusing {record.relative_to(self.path)}")
            return read_json(record, dict, ["result"])["result"]
        self.log(f"stage {name}: running")
        t0 = time.time()
        result = fn()
        seconds = time.time() - t0
        write_json(record, {"stage": name, "seconds": seconds, "result": result})
        self.log(f"stage {name}: finished in {seconds:.1f}s")
        return read_json(record)["result"]  # the JSON form, identical on a resumed run

    def stage_seconds(self) -> dict[str, float]:
        """Wall time of every finished stage (from the resume records)."""
        out = {}
        for record in sorted(self._stages.glob("*.json")):
            out[record.stem] = read_json(record, dict, ["seconds"])["seconds"]
        return out

    @contextlib.contextmanager
    def timed(self, what: str) -> Iterator[None]:
        t0 = time.time()
        yield
        self.log(f"{what}: {time.time() - t0:.1f}s")
