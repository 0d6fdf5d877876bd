"""Parity of exported models against Keras: max abs difference, accuracy, size, latency.

`tflite_parity(...)` converts a Keras image classifier into every TFLite variant, runs each on
the on-device interpreter over a held-out slice and compares it with Keras; `check_targets`
applies the deployment targets (int8 within 1.5 accuracy points of float32 and >= 3x smaller,
dynamic-range int8 within 1 point).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from tfkit.backend import tf
from tfkit.export.data import ImageSlices
from tfkit.export.tflite import VARIANTS, TFLiteModel, convert
from tfkit.model_io import model_inputs
from tfkit.runs import atomic_write_text, markdown_table, write_json

__all__ = ["tflite_parity", "check_targets", "parity_markdown", "write_parity", "TARGETS"]

# Accuracy drop allowed against float32 TFLite (points), and the size reduction int8 must reach.
TARGETS = {"int8_max_drop_points": 1.5, "int8_min_size_ratio": 3.0,
           "dynamic_int8_max_drop_points": 1.0}


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def tflite_parity(model: Any, slices: ImageSlices, out: str | os.PathLike, name: str,
                  variants: tuple[str, ...] = VARIANTS, log: Any = print) -> dict:
    """Writes `out/NAME_VARIANT.tflite` for each variant and returns the parity report.

    The report: {"keras": {"accuracy"}, "variants": {variant: {"file", "size_bytes",
    "size_ratio", "max_abs_diff", "accuracy", "accuracy_drop_points", "agreement",
    "latency_ms"}}, "targets": {...}, "examples": N, "dataset": ...}.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # the pixels as the model reads them: [0, 1] floats, or 0..255 for a model that scales
    # them itself (as the SavedModel serves it); int8 calibration in the same domain
    test_x = model_inputs(model, tf.constant(slices.test_x)).numpy()
    calibration = model_inputs(model, tf.constant(slices.calibration)).numpy()
    keras_logits = np.asarray(model.predict(test_x, batch_size=256, verbose=0))
    report = {"dataset": slices.dataset, "examples": int(len(test_x)),
              "keras": {"accuracy": _accuracy(keras_logits, slices.test_y)}, "variants": {}}
    for variant in variants:
        flat = convert(model, variant, calibration if variant == "int8" else None,
                       input_shape=test_x.shape[1:])
        path = out / f"{name}_{variant}.tflite"
        path.write_bytes(flat)
        runner = TFLiteModel(path, num_threads=1)
        t0 = time.perf_counter()
        logits = runner.predict(test_x)
        latency_ms = 1000 * (time.perf_counter() - t0) / len(test_x)
        report["variants"][variant] = {
            "file": path.name, "size_bytes": len(flat),
            "max_abs_diff": float(np.max(np.abs(logits - keras_logits))),
            "accuracy": _accuracy(logits, slices.test_y),
            "agreement": float(np.mean(logits.argmax(-1) == keras_logits.argmax(-1))),
            "latency_ms": latency_ms}
        log(f"tflite {variant}: {len(flat) / 1e6:.2f} MB, accuracy "
            f"{report['variants'][variant]['accuracy']:.4f}, {latency_ms:.2f} ms/image")
    base = report["variants"].get("float32")
    for v in report["variants"].values():
        v["size_ratio"] = base["size_bytes"] / v["size_bytes"] if base else None
        v["accuracy_drop_points"] = 100 * (base["accuracy"] - v["accuracy"]) if base else None
    report["targets"] = check_targets(report)
    return report


def check_targets(report: dict) -> dict[str, bool]:
    """Which deployment targets the report meets (only those its variants can decide)."""
    v, met = report["variants"], {}
    if "int8" in v and "float32" in v:
        met["int8_accuracy_within_1.5_points"] = (
            v["int8"]["accuracy_drop_points"] <= TARGETS["int8_max_drop_points"])
        met["int8_at_least_3x_smaller"] = v["int8"]["size_ratio"] >= TARGETS["int8_min_size_ratio"]
    if "dynamic_int8" in v and "float32" in v:
        met["dynamic_int8_accuracy_within_1_point"] = (
            v["dynamic_int8"]["accuracy_drop_points"] <= TARGETS["dynamic_int8_max_drop_points"])
    return met


def parity_markdown(report: dict) -> str:
    """The parity table (one row per variant, Keras first) and the targets as markdown."""
    rows = [["keras (float32)", "", "", report["keras"]["accuracy"], "", "", "", ""]]
    def vs_float32(value: float | None, spec: str) -> str:  # None without a float32 variant
        return "n/a" if value is None else format(value, spec)

    for variant, v in report["variants"].items():
        rows.append([variant, f"{v['size_bytes'] / 1e6:.3f} MB",
                     vs_float32(v["size_ratio"], ".2f") + ("x" if v["size_ratio"] else ""),
                     v["accuracy"], vs_float32(v["accuracy_drop_points"], "+.2f"), v["agreement"],
                     f"{v['max_abs_diff']:.2e}", f"{v['latency_ms']:.2f}"])
    table = markdown_table(rows, ["model", "size", "smaller than float32", "accuracy",
                                  "drop vs float32 (points)", "top-1 agreement with Keras",
                                  "max abs diff (logits)", "ms/image (1 thread)"], digits=4)
    targets = "\n".join(f"- {k}: {'met' if ok else 'MISSED'}"
                        for k, ok in report["targets"].items())
    return (f"Held-out slice: {report['examples']} test examples (seeded random sample) of "
            f"`{report['dataset']}`; TFLite runs on the on-device interpreter at batch 1.\n\n"
            f"{table}\nTargets:\n{targets}\n")


def write_parity(report: dict, out: str | os.PathLike) -> None:
    """`out/parity.json` and `out/parity.md`."""
    write_json(Path(out) / "parity.json", report)
    atomic_write_text(Path(out) / "parity.md", "# TFLite parity\n\n" + parity_markdown(report))
