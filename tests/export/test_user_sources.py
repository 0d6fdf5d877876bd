"""Exporting a user's own `.keras` file: tfkit's keras-nlp Top-k blocks load, unknown ones fail
with an `ExportError`, never a raw Keras traceback."""

import subprocess
import sys

import pytest

from tfkit.backend import keras
from tfkit.export import ExportError, resolve_source

# A fresh process: the test must not see blocks registered by other tests' imports.
_SAVE = """
import sys
from tfkit.backend import keras
from tfkit.sparsity.keras_nlp_blocks import TopKTransformerEncoder
inputs = keras.Input((6, 8))
outputs = TopKTransformerEncoder(top_k=4, intermediate_dim=16, num_heads=2)(inputs)
keras.Model(inputs, outputs).save(sys.argv[1])
"""
_LOAD = """
import sys
from tfkit.export import resolve_source
model = resolve_source(sys.argv[1]).load()
print(type(model.layers[1]).__name__)
"""


def test_keras_nlp_top_k_blocks_load_in_a_fresh_process(tmp_path):
    path = tmp_path / "nlp.keras"
    subprocess.run([sys.executable, "-c", _SAVE, str(path)], check=True)
    done = subprocess.run([sys.executable, "-c", _LOAD, str(path)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("TopKTransformerEncoder")


class _Unregistered(keras.layers.Layer):
    def call(self, x):
        return x


def test_unknown_custom_layer_is_an_export_error(tmp_path):
    inputs = keras.Input((4,))
    path = tmp_path / "own.keras"
    keras.Model(inputs, _Unregistered()(inputs)).save(path)
    with pytest.raises(ExportError, match="cannot load"):
        resolve_source(path).load()


def _tiny_classifier():
    inputs = keras.Input((4, 4, 1))
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))


def test_export_never_replaces_a_folder_that_is_not_a_saved_model(tmp_path):
    from tfkit.export import export_saved_model

    model, meta = _tiny_classifier(), {"kind": "image_classifier"}
    run = tmp_path / "run"  # e.g. `--out runs/ln` or `--out saved_models/NAME` (no version)
    (run / "models").mkdir(parents=True)
    (run / "models" / "topk.keras").write_text("the user's trained model")
    with pytest.raises(ExportError, match="not a SavedModel"):
        export_saved_model(model, meta, run)
    assert (run / "models" / "topk.keras").read_text() == "the user's trained model"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="not a SavedModel"):
        export_saved_model(model, meta, tmp_path / "file")
    # a previous export (and an empty folder) is replaced
    version = tmp_path / "saved_models" / "m" / "1"
    export_saved_model(model, meta, version)
    export_saved_model(model, meta, version)
    (tmp_path / "empty").mkdir()
    export_saved_model(model, meta, tmp_path / "empty")
    assert (version / "saved_model.pb").is_file()
    assert (tmp_path / "empty" / "saved_model.pb").is_file()


def test_tflite_export_into_a_file_is_an_export_error(tmp_path):
    import json

    from tfkit.export.cli import export_tflite

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    model.save(tmp_path / "own.keras")
    (tmp_path / "own.json").write_text(json.dumps({"kind": "image_classifier",
                                                   "dataset": "digits"}))
    (tmp_path / "taken").write_text("not a folder")
    with pytest.raises(ExportError, match="not a folder"):
        export_tflite(tmp_path / "own.keras", tmp_path / "taken")


def test_export_cli_refuses_the_folder_before_loading_the_model(tmp_path, monkeypatch):
    from tfkit.export import cli as export_cli
    from tfkit.export.source import ModelSource

    def never(self):
        raise AssertionError("loaded the model before checking --out")

    monkeypatch.setattr(ModelSource, "load", never)
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    (run / "models" / "m.keras").write_text("x")
    with pytest.raises(ExportError, match="not a SavedModel"):
        export_cli.export_savedmodel(run / "models" / "m.keras", run)


def test_an_out_under_a_file_is_refused_before_loading_the_model(tmp_path, monkeypatch):
    from tfkit.export import cli as export_cli
    from tfkit.export.source import ModelSource

    def never(self):
        raise AssertionError("loaded the model before checking --out")

    monkeypatch.setattr(ModelSource, "load", never)
    (tmp_path / "m.keras").write_text("x")
    (tmp_path / "taken").write_text("a file where a folder should be")
    for export in (export_cli.export_savedmodel, export_cli.export_tflite):
        with pytest.raises(ExportError, match="taken is a file, not a folder"):
            export(tmp_path / "m.keras", tmp_path / "taken" / "m" / "1")
    monkeypatch.setattr("os.access", lambda path, mode: False)  # a read-only folder (as root too)
    for export in (export_cli.export_savedmodel, export_cli.export_tflite):
        with pytest.raises(ExportError, match="is not writable"):
            export(tmp_path / "m.keras", tmp_path / "new" / "1")


def test_a_failed_tflite_export_leaves_no_half_written_folder(tmp_path, monkeypatch):
    """int8 failing after float32/float16 were written: `--out` keeps its earlier contents
    (no new .tflite beside a stale parity.md / card that look complete)."""
    import json

    from tfkit.export import cli as export_cli
    from tfkit.export import parity

    inputs = keras.Input((8, 8, 1))
    keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs))).save(
        tmp_path / "own.keras")
    (tmp_path / "own.json").write_text(json.dumps({"kind": "image_classifier",
                                                   "dataset": "digits"}))
    convert = parity.convert

    def failing(model, variant, *args, **kwargs):
        if variant == "int8":
            raise ExportError("TFLite int8 conversion failed: no int8 kernel")
        return convert(model, variant, *args, **kwargs)

    monkeypatch.setattr(parity, "convert", failing)
    for out in (tmp_path / "fresh", tmp_path / "earlier"):
        if out.name == "earlier":
            out.mkdir()
            (out / "parity.md").write_text("earlier export")
        with pytest.raises(ExportError, match="int8"):
            export_cli.export_tflite(tmp_path / "own.keras", out)
        assert sorted(p.name for p in out.glob("*")) == (
            ["parity.md"] if out.name == "earlier" else [])
        assert not list(tmp_path.glob(".*"))  # no staging folder left behind
