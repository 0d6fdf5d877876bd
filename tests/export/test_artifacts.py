"""The committed reference exports: small, carded, and as accurate as they claim."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tfkit.datasets import DataError
from tfkit.export import TFLiteModel
from tfkit.export.data import image_slices

ROOT = Path(__file__).resolve().parents[2]
SAVED = sorted(p.parent for p in (ROOT / "saved_models").glob("*/*/saved_model.pb"))
TFLITE = sorted(p.parent for p in (ROOT / "tflite").glob("*/parity.json"))
MAX_BYTES = 5 * 2**20  # artifacts committed to the repository stay under 5 MB each


def held_out(meta: dict, shape, examples: int, data_dir: Path):
    """The slice the export measured on; skips when the dataset is absent."""
    try:
        s = image_slices(meta, tuple(shape), data_dir, test_size=examples, calibration_size=1)
    except DataError as e:
        pytest.skip(f"held-out data not available: {e}")
    return s.test_x, s.test_y


def test_reference_artifacts_exist_with_cards():
    assert SAVED and TFLITE, "saved_models/ and tflite/ should hold reference exports"
    for folder in [*(p.parent for p in SAVED), *TFLITE]:
        card = (folder / "MODEL_CARD.md").read_text()
        assert "## Data" in card and "## Metrics" in card and "tfkit export" in card
    for path in [*(ROOT / "saved_models").rglob("*"), *(ROOT / "tflite").rglob("*")]:
        assert not path.is_file() or path.stat().st_size <= MAX_BYTES, path


@pytest.mark.parametrize("path", SAVED, ids=lambda p: str(p.relative_to(ROOT)))
def test_saved_model_reproduces_recorded_accuracy(path, data_dir):
    from tfkit.backend import tf

    record = json.loads((path.parent / "export.json").read_text())
    parity = record["parity"]
    shape = record["signatures"]["serving_default"]["inputs"]["images"][1][1:]
    x, y = held_out(record["meta"], shape, parity["examples"], data_dir)
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    classes = np.concatenate([serve(images=tf.constant(x[i:i + 250]))["classes"].numpy()
                              for i in range(0, len(x), 250)])
    assert float(np.mean(classes == y)) == pytest.approx(parity["accuracy"], abs=2e-3)


@pytest.mark.parametrize("path", TFLITE, ids=lambda p: str(p.relative_to(ROOT)))
def test_tflite_variants_reproduce_recorded_accuracy(path, data_dir):
    report = json.loads((path / "parity.json").read_text())
    meta = {"dataset": report["dataset"]}
    first = TFLiteModel(path / report["variants"]["float32"]["file"])
    x, y = held_out(meta, first.input_shape, report["examples"], data_dir)
    for variant, recorded in report["variants"].items():
        model = TFLiteModel(path / recorded["file"])
        accuracy = float(np.mean(model.predict(x / np.float32(255)).argmax(-1) == y))
        assert accuracy == pytest.approx(recorded["accuracy"], abs=2e-3), variant


def test_no_docstring_example_writes_over_a_reference_artifact():
    """A docstring example run from the repository root (copied into a shell, or `pytest
    --doctest-modules`) must not replace saved_models/topk or tflite/topk with a random model."""
    import doctest
    import importlib
    import pkgutil

    import tfkit.export

    names = ["tfkit.export", *(m.name for m in pkgutil.iter_modules(tfkit.export.__path__,
                                                                      "tfkit.export."))]
    for name in names:
        for test in doctest.DocTestFinder().find(importlib.import_module(name), name):
            for example in test.examples:
                for artifact in {"/".join(p.relative_to(ROOT).parts[:2])
                                 for p in [*SAVED, *TFLITE]}:  # saved_models/topk, tflite/topk
                    assert f"{artifact}/" not in example.source and \
                        f'{artifact}"' not in example.source, (name, example.source)
