"""Errors of the exporters: user-fixable problems with a model, its metadata or an artifact."""

from __future__ import annotations

from tfkit.errors import TfkitError

__all__ = ["ExportError", "TFLiteModelError"]


class ExportError(TfkitError, ValueError):
    """The model or its metadata cannot be exported as asked; the message says what to fix."""


class TFLiteModelError(ExportError):
    """A `.tflite` file is unreadable (corrupted, truncated) or does not fit the data given."""
