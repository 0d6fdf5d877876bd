"""Evaluators on what users plausibly pass: probability outputs, uint8 or unbatched
tf.data datasets, empty data, images of the wrong shape."""

import numpy as np
import pytest

from tfkit.backend import keras, tf
from tfkit.robustness import registry


def _data(n=24, channels=1):
    rng = np.random.default_rng(0)
    return rng.random((n, 8, 8, channels)).astype(np.float32), rng.integers(0, 3, n)


def _models(classes=3):
    inp = keras.Input((8, 8, 1))
    logits = keras.layers.Dense(classes)(keras.layers.Flatten()(inp))
    return keras.Model(inp, logits), keras.Model(inp, keras.layers.Softmax()(logits))


def test_a_model_that_outputs_probabilities_gets_the_same_ece_and_attacks():
    x, y = _data()
    with_logits, with_probs = _models()
    opts = {"adversarial": {"linf_epsilons": (0.05,), "l2_epsilons": (), "steps": 2}}
    want = registry.run(with_logits, (x, y), ["clean", "adversarial"], opts)
    have = registry.run(with_probs, (x, y), ["clean", "adversarial"], opts)
    assert have == pytest.approx(want, abs=1e-4)


def test_a_uint8_or_unbatched_dataset_is_scaled_and_batched_like_arrays():
    x, y = _data()
    model, _ = _models()
    want = registry.run(model, (x, y), ["clean"])
    xu = np.round(x * 255).astype(np.uint8)
    want_u8 = registry.run(model, (xu, y), ["clean"])
    uint8_batches = tf.data.Dataset.from_tensor_slices((xu, y)).batch(5)
    assert registry.run(model, uint8_batches, ["clean"]) == pytest.approx(want_u8)
    unbatched = tf.data.Dataset.from_tensor_slices((x, y))
    assert registry.run(model, unbatched, ["clean"]) == pytest.approx(want)


def test_empty_data_and_wrong_image_shapes_give_one_line_errors():
    x, y = _data()
    model, _ = _models()
    with pytest.raises(ValueError, match="no examples"):
        registry.run(model, (x[:0], y[:0]), ["clean"])
    with pytest.raises(ValueError, match=r"expects images of shape \(8, 8, 1\).*\(8, 8, 3\)"):
        registry.run(model, _data(channels=3), ["clean"])
    with pytest.raises(ValueError, match=r"expects images of shape"):
        registry.run(model, (x[:, :4, :4], y), ["corruptions"])


def test_eval_command_rejects_a_limit_below_one(tmp_path):
    from tfkit.errors import TfkitError
    from tfkit.robustness.cli import eval_command

    model, _ = _models()
    model.save(tmp_path / "m.keras")
    with pytest.raises(TfkitError, match="--limit must be at least 1"):
        eval_command(str(tmp_path / "m.keras"), "digits", ["patch"], limit=0)


def test_adversarial_on_a_numpy_predict_fn_is_a_clear_error():
    from tfkit.errors import TfkitError

    x, y = _data(n=6)
    model, _ = _models()
    numpy_fn = lambda images: model(np.asarray(images)).numpy()  # fine for the other suites
    assert registry.run(numpy_fn, (x, y), ["clean"]) == pytest.approx(
        registry.run(model, (x, y), ["clean"]))
    with pytest.raises(TfkitError, match="not differentiable"):
        registry.run(numpy_fn, (x, y), ["adversarial"], {"adversarial": {"steps": 2}})


def test_eval_command_does_not_overwrite_a_run_directorys_results(tmp_path):
    from tfkit.errors import TfkitError
    from tfkit.robustness.cli import eval_command

    model, _ = _models(classes=10)
    model.save(tmp_path / "m.keras")
    run_results = tmp_path / "run" / "results.json"
    run_results.parent.mkdir()
    run_results.write_text('{"experiment": "robustness", "clean": {"vit": 0.9}}')
    with pytest.raises(TfkitError, match="not a `tfkit eval robustness` result"):
        eval_command(str(tmp_path / "m.keras"), "digits", ["patch"], limit=8,
                     out=tmp_path / "run")
    assert "experiment" in run_results.read_text()
    eval_command(str(tmp_path / "m.keras"), "digits", ["patch"], limit=8, out=tmp_path / "ev")
    eval_command(str(tmp_path / "m.keras"), "digits", ["patch"], limit=8, out=tmp_path / "ev")


def test_eval_command_checks_the_layers_suite_before_running_the_others(tmp_path, capsys):
    from tfkit.errors import TfkitError
    from tfkit.robustness.cli import eval_command

    model, _ = _models()  # no block_0, block_1, ...
    model.save(tmp_path / "m.keras")
    with pytest.raises(TfkitError, match="block_0"):
        eval_command(str(tmp_path / "m.keras"), "digits", ["patch", "layers"], limit=8)
    assert "patch/shuffle" not in capsys.readouterr().out


def test_patch_suite_aligns_with_a_resizing_vits_patches():
    from tfkit.models import ViT

    model = ViT(image_size=8, patch_size=4, num_layers=1, hidden_dim=8, num_heads=2,
                intermediate_dim=16, channels=1, resize_inputs=True)
    x = np.random.default_rng(0).random((6, 16, 16, 1)).astype(np.float32)
    y = np.arange(6) % 10
    # 16 px inputs resize to 8: the ViT's 4 px patches are 8 input px.
    assert registry.run(model, (x, y), ["patch"]) == registry.run(
        model, (x, y), ["patch"], {"patch": {"patch_size": 8}})


def test_a_misspelt_option_or_a_single_output_model_is_an_error_not_ignored():
    x, y = _data(n=6)
    model, _ = _models()
    with pytest.raises(registry.UnknownEvaluatorError, match="adversarials"):
        registry.run(model, (x, y), ["clean"], {"adversarials": {"steps": 20}})
    inp = keras.Input((8, 8, 1))
    sigmoid = keras.Model(inp, keras.layers.Dense(1, "sigmoid")(keras.layers.Flatten()(inp)))
    with pytest.raises(ValueError, match=r"\[batch, classes\]"):
        registry.run(sigmoid, (x, y % 2), ["clean"])


def test_one_hot_labels_count_like_class_ids():
    x, y = _data()
    model, _ = _models()
    want = registry.run(model, (x, y), ["clean"])
    one_hot = np.eye(3, dtype=np.float32)[y]
    assert registry.run(model, (x, one_hot), ["clean"]) == pytest.approx(want)
    batches = tf.data.Dataset.from_tensor_slices((x, one_hot)).batch(7)
    assert registry.run(model, batches, ["clean"]) == pytest.approx(want)


def test_a_dataset_with_column_labels_runs_the_attacks():
    x, y = _data(n=6)
    model, _ = _models()
    opts = {"adversarial": {"linf_epsilons": (0.05,), "l2_epsilons": (0.5,), "steps": 2}}
    want = registry.run(model, (x, y), ["adversarial"], opts)
    column = tf.data.Dataset.from_tensor_slices((x, y[:, None])).batch(4)  # like keras.datasets
    assert registry.run(model, column, ["adversarial"], opts) == pytest.approx(want)


def test_eval_command_checks_the_adversarial_suite_before_running_the_others(tmp_path, capsys,
                                                                             monkeypatch):
    from tfkit.errors import TfkitError
    from tfkit.robustness import cli

    model, _ = _models(classes=10)
    model.save(tmp_path / "m.keras")
    numpy_fn = lambda images: model(np.asarray(images)).numpy()  # e.g. a non-TF SavedModel
    monkeypatch.setattr(cli, "load_model", lambda path: numpy_fn)
    with pytest.raises(TfkitError, match="not differentiable"):
        cli.eval_command(str(tmp_path / "m.keras"), "digits", ["patch", "adversarial"], limit=8)
    assert "patch/shuffle" not in capsys.readouterr().out


def test_labels_beyond_the_models_classes_are_an_error():
    x, y = _data()
    model, _ = _models(classes=3)
    with pytest.raises(ValueError, match="labels go up to 5.*3 classes"):
        registry.run(model, (x, y + 3), ["clean"])
    with pytest.raises(ValueError, match="labels go up to 5.*3 classes"):
        registry.run(model, (x, y + 3), ["adversarial"])
