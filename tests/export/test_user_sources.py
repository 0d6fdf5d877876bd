"""Exporting a user's own `.keras` file: tfkit's keras-nlp Top-k blocks load, unknown ones fail
with an `ExportError`, never a raw Keras traceback."""

import os
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


def test_a_failed_saved_model_parity_check_leaves_the_earlier_export_whole(tmp_path,
                                                                            monkeypatch):
    """The parity check failing for a new model: `--out` keeps the earlier SavedModel with its
    own export.json and card (never the new model beside the old model's metadata)."""
    import contextlib
    import io
    import json

    from tfkit.export import cli as export_cli
    from tfkit.export.saved_model import signature_summary

    for name, side in (("old", 4), ("new", 6)):
        inputs = keras.Input((side, side, 1))
        keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs))).save(
            tmp_path / f"{name}.keras")
        (tmp_path / f"{name}.json").write_text(json.dumps({"kind": "image_classifier"}))
    out = tmp_path / "sm" / "m" / "1"
    with contextlib.redirect_stdout(io.StringIO()):
        assert export_cli.export_savedmodel(tmp_path / "old.keras", out) == 0
    record = (out.parent / "export.json").read_text()

    def failing(*args, **kwargs):
        raise RuntimeError("serving_default crashed")

    monkeypatch.setattr(export_cli, "saved_model_parity", failing)
    for target in (out, tmp_path / "sm" / "fresh" / "1"):
        with contextlib.redirect_stdout(io.StringIO()), \
                pytest.raises(ExportError, match="parity check .* serving_default crashed"):
            export_cli.export_savedmodel(tmp_path / "new.keras", target)
    assert (out.parent / "export.json").read_text() == record
    images = signature_summary(out)["serving_default"]["inputs"]["images"]
    assert images == ("uint8", [None, 4, 4, 1])  # the old model, as export.json says
    assert json.loads(record)["signatures"]["serving_default"]["inputs"]["images"][1] == [
        None, 4, 4, 1]
    assert not (tmp_path / "sm" / "fresh" / "1").exists()
    assert sorted(p.name for p in (tmp_path / "sm").rglob(".*")) == []  # no staging left


_USER_LAYERS = """
from tfkit.backend import keras


@keras.utils.register_keras_serializable(package="{package}")
class Doubler(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x
"""
_SAVE_USERS = """
import importlib.util, sys
from tfkit.backend import keras
spec = importlib.util.spec_from_file_location("user_layers", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
side, classes = int(sys.argv[3]), int(sys.argv[4])
inputs = keras.Input((side, side, 1))
hidden = keras.layers.Flatten()(module.Doubler()(inputs))
keras.Model(inputs, keras.layers.Dense(classes)(hidden)).save(sys.argv[2])
"""


def save_user_layer_model(folder, package: str, side: int = 4, classes: int = 3):
    """(module file, .keras) of a model with a custom layer that only `module` registers,
    saved in a fresh process: this one has not imported it (only `--import` may)."""
    module = folder / f"{package}.py"
    module.write_text(_USER_LAYERS.format(package=package))
    model = folder / "own.keras"
    subprocess.run([sys.executable, "-c", _SAVE_USERS, str(module), str(model), str(side),
                    str(classes)], check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return module, model


def test_export_cli_imports_the_users_module_that_registers_a_custom_layer(tmp_path,
                                                                           monkeypatch,
                                                                           capsys):
    from tfkit.cli import main

    module, model = save_user_layer_model(tmp_path, "user_export_layers")
    out = tmp_path / "sm" / "own" / "1"
    assert main(["export", "savedmodel", str(model), "--out", str(out)]) == 2
    assert "--import MODULE" in capsys.readouterr().err  # the error says how to fix it
    assert main(["export", "savedmodel", str(model), "--out", str(out),
                 "--import", "no_such_user_module"]) == 2
    err = capsys.readouterr().err
    assert "--import no_such_user_module: cannot import it (ModuleNotFoundError" in err
    assert main(["export", "savedmodel", str(model), "--out", str(out), "--import",
                 str(tmp_path / "missing.py")]) == 2
    assert "missing.py: cannot import it" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # a module name is found from the current folder
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, module.stem, raising=False)
    assert main(["export", "savedmodel", str(model), "--out", str(out),
                 "--import", module.stem]) == 0
    assert (out / "saved_model.pb").is_file()
    assert main(["export", "savedmodel", str(model), "--out", str(out),
                 "--import", str(module)]) == 0  # or a path to the .py file
