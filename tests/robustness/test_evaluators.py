import json

import numpy as np
import pytest

from tfkit.backend import tf
from tfkit.errors import TfkitError
from tfkit.models import ViT
from tfkit.robustness import metrics, registry
from tfkit.robustness.cli import eval_command


def test_metrics():
    labels = np.array([0, 1, 1, 0])
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 1.0]])
    assert metrics.accuracy(logits, labels) == 0.5
    confident = np.log(np.array([[0.999, 0.001]] * 4))
    assert metrics.expected_calibration_error(confident, np.zeros(4)) < 0.01
    assert metrics.expected_calibration_error(confident, np.ones(4)) > 0.99
    base = {"fog": [0.8, 0.6], "snow": [0.9, 0.5]}
    assert metrics.mce(base, base) == pytest.approx(1.0)
    better = {"fog": [0.9, 0.8], "snow": [0.95, 0.75]}
    assert metrics.mce(better, base) < 1.0
    assert metrics.relative_mce(base, 1.0, base, 1.0) == pytest.approx(1.0)
    assert metrics.mean_corruption_accuracy(base) == pytest.approx(0.7)


def test_registry_names_and_errors():
    assert {"clean", "corruptions", "adversarial", "spatial", "patch", "layers"} <= set(
        registry.names())
    with pytest.raises(registry.UnknownEvaluatorError, match="valid: clean, corruptions"):
        registry.get("noise")
    with pytest.raises(registry.UnknownEvaluatorError, match="unknown suite"):
        registry.run(lambda x: x, (np.zeros((1, 8, 8, 1)), [0]), ["bogus"])


def test_evaluators_on_a_predict_fn_yield_named_values():
    x = np.random.default_rng(0).random((16, 8, 8, 1)).astype(np.float32)
    y = np.arange(16) % 10
    weights = tf.random.stateless_normal([64, 10], [1, 2])
    fn = lambda images: tf.reshape(images, [-1, 64]) @ weights  # any differentiable callable
    results = registry.run(fn, (x, y), ["clean", "patch", "spatial"],
                           {"patch": {"patch_size": 2}, "spatial": {"rotations": (0, 10),
                                                                     "translations": (0,)}})
    assert set(results) >= {"clean/accuracy", "clean/ece", "patch/shuffle", "patch/drop/4",
                            "spatial/rotation_translation"}
    assert all(0 <= v <= 1 for v in results.values())
    assert results["spatial/rotation"] <= results["clean/accuracy"]  # the grid includes 0°
    again = registry.run(fn, (x, y), ["patch"], {"patch": {"patch_size": 2}})
    assert again == {k: v for k, v in results.items() if k.startswith("patch/")}


def test_eval_command_on_a_saved_model(tmp_path):
    model = ViT(image_size=8, patch_size=4, num_layers=1, hidden_dim=8, num_heads=2,
                intermediate_dim=16, channels=1)
    model.save(tmp_path / "m.keras")
    code = eval_command(str(tmp_path / "m.keras"), "digits", ["layers"], limit=32,
                        out=tmp_path / "out")
    results = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    assert code == 0 and "layers/remove_block/0" in results and "cka/all" in results
    tf.saved_model.save(model, str(tmp_path / "sm"))  # a plain SavedModel: input suites only
    assert eval_command(str(tmp_path / "sm"), "digits", ["patch"], limit=16) == 0
    with pytest.raises(registry.UnknownEvaluatorError):
        eval_command(str(tmp_path / "m.keras"), "digits", ["texture"], limit=16)


def test_eval_command_on_a_tfkit_export_savedmodel(tmp_path):
    """`tfkit export savedmodel` output (uint8 images in; logits, probabilities, classes out)
    scores like the Keras model it came from; its uint8 input is not differentiable."""
    from tfkit.export import export_saved_model
    from tfkit.robustness.cli import load_model

    model = ViT(image_size=8, patch_size=4, num_layers=1, hidden_dim=8, num_heads=2,
                intermediate_dim=16, channels=1)
    model.save(tmp_path / "m.keras")
    export_saved_model(model, {}, tmp_path / "exported")
    x = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1)).astype(np.float32) / 255.0
    np.testing.assert_allclose(load_model(tmp_path / "exported")(x), model(x), atol=1e-5)
    runs = {}
    for name in ("m.keras", "exported"):
        eval_command(str(tmp_path / name), "digits", ["patch"], limit=16,
                     out=tmp_path / f"{name}.json")
        runs[name] = json.loads((tmp_path / f"{name}.json").read_text())["results"]
    assert runs["exported"]["clean/accuracy"] == runs["m.keras"]["clean/accuracy"]
    assert runs["exported"]["patch/shuffle"] == runs["m.keras"]["patch/shuffle"]
    with pytest.raises(TfkitError, match="not differentiable"):
        eval_command(str(tmp_path / "exported"), "digits", ["adversarial"], limit=8)


def test_run_checks_every_suite_before_running_any(monkeypatch):
    """A Python caller gets the layer and attack suites' errors before the input suites run."""
    calls = []
    weights = tf.random.stateless_normal([64, 2], seed=[0, 1])

    def fn(images):  # a predict_fn (not a Keras model): no layers suite
        calls.append(len(images))
        return tf.reshape(images, [-1, 64]) @ weights

    x, y = np.random.default_rng(0).random((8, 8, 8, 1), np.float32), np.arange(8) % 2
    with pytest.raises(TfkitError, match="needs a Keras model.*drop `layers`"):
        registry.run(fn, (x, y), ["clean", "patch", "layers"])
    assert calls == []  # nothing ran
    numpy_fn = lambda images: np.asarray(fn(images))
    with pytest.raises(TfkitError, match="not differentiable"):
        registry.run(numpy_fn, (x, y), ["patch", "adversarial"])
    assert calls == [8, 2]  # the check: one batch, a 2-image gradient; patch never ran

    checked = []
    monkeypatch.setitem(registry.EVALUATORS, "mine", lambda m, d: iter([("mine/x", 1.0)]))
    monkeypatch.setitem(registry.SUITES, "mine", ("mine",))
    monkeypatch.setitem(registry.CHECKS, "mine", lambda m, d: checked.append(m))
    assert registry.run(fn, (x, y), ["mine"]) == {"mine/x": 1.0} and checked == [fn]
    # replacing a built-in evaluator drops its check (a predict_fn may now run "layers")
    monkeypatch.setitem(registry.EVALUATORS, "layers", registry.EVALUATORS["layers"])
    monkeypatch.setitem(registry.CHECKS, "layers", registry.CHECKS["layers"])
    monkeypatch.setitem(registry.CHECKS, "cka", registry.CHECKS["cka"])
    monkeypatch.setitem(registry.EVALUATORS, "cka", registry.EVALUATORS["cka"])
    registry.register("layers")(lambda m, d: iter([("layers/mine", 2.0)]))
    registry.register("cka")(lambda m, d: iter([]))
    assert registry.run(fn, (x, y), ["layers"]) == {"layers/mine": 2.0}


def test_eval_command_refuses_a_text_dataset_before_loading_it(monkeypatch, tmp_path):
    def no_loading(*args, **kwargs):
        raise AssertionError("loaded (or downloaded) a dataset it cannot use")

    monkeypatch.setattr("tfkit.datasets.load", no_loading)
    with pytest.raises(TfkitError, match="'tinyshakespeare' is not an image dataset; choose"):
        eval_command(str(tmp_path / "m.keras"), "tinyshakespeare", ["patch"], limit=16)


def test_eval_command_names_an_unknown_dataset_as_unknown(tmp_path):
    with pytest.raises(TfkitError, match="unknown dataset 'cifar'"):
        eval_command(str(tmp_path / "m.keras"), "cifar", ["patch"], limit=16)
