"""The parity table when a report lacks the float32 baseline; held-out images that do not fit."""

from __future__ import annotations

from tfkit.export.parity import check_targets, parity_markdown


def test_parity_markdown_without_float32_baseline():
    report = {"dataset": "digits", "examples": 10, "keras": {"accuracy": 0.9},
              "variants": {"int8": {"size_bytes": 1000, "size_ratio": None, "accuracy": 0.8,
                                    "accuracy_drop_points": None, "agreement": 0.85,
                                    "max_abs_diff": 0.1, "latency_ms": 0.5}}}
    report["targets"] = check_targets(report)
    text = parity_markdown(report)
    assert "int8" in text and "n/a" in text


def test_held_out_images_with_other_channels_name_the_shape_the_model_takes():
    import numpy as np
    import pytest

    from tfkit.export import ExportError
    from tfkit.export.data import fit_images

    gray = np.zeros((2, 8, 8), np.uint8)  # digits / MNIST
    with pytest.raises(ExportError, match=r"images \[8, 8, 1\].*takes \[32, 32, 3\]"):
        fit_images(gray, (32, 32, 3))
    assert fit_images(gray, (4, 4, 1)).shape == (2, 4, 4, 1)  # another size: resized
