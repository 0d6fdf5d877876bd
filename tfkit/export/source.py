"""Finds the model to export: a run directory's primary model or a `.keras` file, with its meta.

A run directory saved by `RunDir.save_model` holds `models/NAME.keras` + `models/NAME.json`;
the JSON (the "meta") says what the model is, e.g. `{"kind": "image_classifier",
"dataset": "cifar10", "input_shape": [32, 32, 3], "class_names": [...],
"metrics": {"accuracy": 0.71}, "primary": true}`. Exporters read everything from it.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfkit.export.errors import ExportError

__all__ = ["ModelSource", "resolve_source", "KINDS"]

KINDS = ("image_classifier", "language_model")


@dataclass(frozen=True)
class ModelSource:
    """A saved Keras model and its meta.

    Attributes:
        path: the `.keras` file.
        meta: the model's meta (`{}` when no JSON sits beside the file).
        run_dir: the run directory it came from, or None for a bare `.keras` file.
    """

    path: Path
    meta: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.path.stem)

    @property
    def kind(self) -> str:
        return str(self.meta.get("kind", ""))

    def load(self) -> Any:
        """The Keras model, with tfkit's serializable layers registered."""
        import tfkit.layers  # noqa: F401  (registers tfkit's layers for deserialization)
        import tfkit.models  # noqa: F401
        from tfkit.backend import keras

        if _mentions(self.path, b"TopKTransformer"):  # imports keras-nlp only when needed
            import tfkit.sparsity.keras_nlp_blocks  # noqa: F401  (registers the Top-k blocks)

        try:
            return keras.models.load_model(self.path, compile=False, safe_mode=False)
        except Exception as e:  # noqa: BLE001  Keras raises OSError, ValueError, TypeError, ...
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ExportError(f"cannot load {self.path}: {first} (a model with custom layers "
                              "loads only where those layers are importable and registered "
                              "with keras.utils.register_keras_serializable; on the command "
                              "line, pass --import MODULE)") from None


def _mentions(model_path: Path, name: bytes) -> bool:
    """Whether the `.keras` archive's model config names `name` (False if unreadable)."""
    try:
        with zipfile.ZipFile(model_path) as archive:
            return name in archive.read("config.json")
    except (OSError, KeyError, zipfile.BadZipFile):
        return False


def _read_meta(model_path: Path) -> dict[str, Any]:
    meta_path = model_path.with_suffix(".json")
    if not meta_path.exists():
        return {}
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise ExportError(f"{meta_path} is not valid JSON ({e})") from None


def _pick(models: list[Path], folder: Path) -> Path:
    if not models:
        raise ExportError(f"{folder} has no models/*.keras; pass a run directory whose "
                          "experiment saved a model, or a .keras file")
    if len(models) == 1:
        return models[0]
    primary = [p for p in models if _read_meta(p).get("primary")]
    if len(primary) == 1:
        return primary[0]
    names = ", ".join(p.stem for p in models)
    raise ExportError(f"{folder} holds several models ({names}) and {len(primary)} marked "
                      f"primary; pass one directly, e.g. {models[0]}")


def resolve_source(source: str | os.PathLike) -> ModelSource:
    """`source` is a run directory (its primary model, else its only one) or a `.keras` file."""
    path = Path(source)
    if not path.exists():
        raise ExportError(f"{path} does not exist; pass a run directory or a .keras file")
    if path.is_dir():
        folder = path / "models" if (path / "models").is_dir() else path
        model_path = _pick(sorted(folder.glob("*.keras")), path)
    elif path.suffix == ".keras":
        model_path = path
    else:
        raise ExportError(f"{path} is neither a run directory nor a .keras file")
    run_dir = model_path.parent.parent if model_path.parent.name == "models" else None
    meta = _read_meta(model_path)
    kind = meta.get("kind")
    if kind is not None and kind not in KINDS:
        raise ExportError(f"{model_path}: meta kind {kind!r} is not one of {', '.join(KINDS)}")
    return ModelSource(model_path, meta, run_dir)
