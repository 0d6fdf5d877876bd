"""Exporting image models that take any size (ResNet, ViT(resize_inputs=True))."""

from __future__ import annotations

import json

import pytest

from tfkit.backend import set_seed, tf
from tfkit.export import ExportError
from tfkit.export.cli import export_savedmodel, export_tflite
from tfkit.models import ResNet
from tfkit.runs import RunDir


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("resnet_run")
    set_seed(0)
    model = ResNet((1,), (4,), num_classes=10, channels=1, name="resnet")
    assert model.input_shape == (None, None, None, 1)
    meta = {"kind": "image_classifier", "dataset": "digits", "input_shape": [8, 8, 1],
            "primary": True}
    RunDir(path, log=None).save_model(model, "resnet", meta)
    return path


def test_any_size_model_exports_at_the_meta_input_shape(resnet_run, tmp_path):
    out = tmp_path / "resnet" / "1"
    assert export_savedmodel(resnet_run, out) == 0
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    assert serve.structured_input_signature[1]["images"].shape.as_list() == [None, 8, 8, 1]
    assert serve(images=tf.zeros([2, 8, 8, 1], tf.uint8))["logits"].shape == (2, 10)
    assert export_tflite(resnet_run, tmp_path / "tflite") == 0
    report = json.loads((tmp_path / "tflite" / "parity.json").read_text())
    assert report["variants"]["float32"]["max_abs_diff"] <= 1e-4


def test_any_size_model_without_input_shape_is_a_clear_error(resnet_run, tmp_path):
    meta_path = resnet_run / "models" / "resnet.json"
    meta = json.loads(meta_path.read_text())
    del meta["input_shape"]
    bare = tmp_path / "bare"
    (bare / "models").mkdir(parents=True)
    (bare / "models" / "resnet.keras").write_bytes(
        (resnet_run / "models" / "resnet.keras").read_bytes())
    (bare / "models" / "resnet.json").write_text(json.dumps(meta))
    for export in (export_savedmodel, export_tflite):
        with pytest.raises(ExportError, match="input_shape"):
            export(bare, tmp_path / export.__name__)
