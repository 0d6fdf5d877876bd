"""The parity table when a report lacks the float32 baseline."""

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
