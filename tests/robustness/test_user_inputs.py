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


def _half_precision_softmax(dtype, w):
    return lambda im: tf.nn.softmax(tf.cast(tf.reshape(im, (-1, 64)) @ w * 3, dtype))


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_half_precision_probabilities_are_read_as_probabilities_in_every_batch(dtype):
    from tfkit.robustness import metrics
    rng = np.random.default_rng(0)
    w = tf.constant(rng.normal(size=(64, 10)) * 0.6, tf.float32)
    x, y = rng.random((1024, 8, 8, 1)).astype(np.float32), rng.integers(0, 10, 1024)
    fn = _half_precision_softmax(dtype, w)
    p = tf.cast(fn(x), tf.float32).numpy()
    want = metrics.expected_calibration_error(np.log(np.maximum(p, 1e-30)), y)
    assert registry.run(fn, (x, y), ["clean"])["clean/ece"] == pytest.approx(want, abs=1e-4)


def test_the_probabilities_or_logits_reading_is_decided_once_per_predict_fn():
    from tfkit.robustness.evaluate import as_predict_fn
    outputs = iter([np.array([[0.2, 0.8]], np.float32), np.array([[0.5, 0.52]], np.float32),
                    np.array([[2.0, -1.0]], np.float32), np.array([[0.3, 0.7]], np.float32)])
    probs = as_predict_fn(lambda x: next(outputs))
    np.testing.assert_allclose(probs(None), np.log([[0.2, 0.8]]), rtol=1e-6)
    np.testing.assert_allclose(probs(None), np.log([[0.5, 0.52]]), rtol=1e-6)  # sum 1.02
    logits = as_predict_fn(lambda x: next(outputs))
    np.testing.assert_array_equal(logits(None), np.float32([[2.0, -1.0]]))
    np.testing.assert_array_equal(logits(None), np.float32([[0.3, 0.7]]))  # logits stay


def _rescaling_model(w, dtype="float32"):
    inp = keras.Input((8, 8, 1), dtype=dtype)
    h = keras.layers.Rescaling(1 / 255)(inp)
    out = keras.layers.Dense(3, kernel_initializer=keras.initializers.Constant(w),
                             bias_initializer=keras.initializers.Constant([2.0, 0.0, -2.0])
                             )(keras.layers.Flatten()(h))
    return keras.Model(inp, out)


def test_a_model_that_rescales_itself_gets_its_uint8_pixels_unscaled():
    rng = np.random.default_rng(0)
    x = (rng.random((64, 8, 8, 1)) * 255).astype(np.uint8)
    w = rng.normal(size=(64, 3)).astype(np.float32)
    model = _rescaling_model(w)
    y = np.argmax(np.asarray(model(x)), -1)  # the model's own predictions: accuracy 1
    assert len(set(y)) > 1  # scaled twice, the bias alone decides: class 0
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)  # one batch, like the arrays
    opts = {"adversarial": {"linf_epsilons": (0.5,), "l2_epsilons": (), "steps": 1}}
    for data in ((x, y), ds):
        results = registry.run(model, data, ["clean", "adversarial"], opts)
        assert results["clean/accuracy"] == 1.0
        assert results["adversarial/fgsm_linf/0.5"] < 1.0  # epsilon on [0, 1] pixels
    corrupted = [registry.run(model, d, ["corruptions"], {"corruptions": {
        "names": ("fog",), "severities": (3,)}}) for d in ((x, y), ds)]
    assert corrupted[0] == corrupted[1]
    assert corrupted[0]["corruptions/fog/3"] > 0.4  # scaled twice: a near-constant guess


def test_single_examples_with_column_or_one_hot_labels_are_batched():
    x, y = _data(channels=1)
    model, _ = _models()
    want = registry.run(model, (x, y), ["clean"])
    for labels in (y[:, None], np.eye(3)[y]):
        ds = tf.data.Dataset.from_tensor_slices((x, labels))
        assert registry.run(model, ds, ["clean"]) == pytest.approx(want)
    grey_batches = tf.data.Dataset.from_tensor_slices((x[..., 0], y)).batch(5)  # [B, H, W]
    assert registry.run(model, grey_batches, ["clean"]) == pytest.approx(want)


def test_labels_of_unknown_width_are_read_at_run_time():
    x, y = _data()
    model, _ = _models()
    want = registry.run(model, (x, y), ["clean"])
    spec = (tf.TensorSpec((None, 8, 8, 1), tf.float32), tf.TensorSpec((None, None), tf.int64))
    for labels in (y[:, None], np.eye(3, dtype=np.int64)[y]):
        ds = tf.data.Dataset.from_generator(lambda labels=labels: iter([(x, labels)]),
                                            output_signature=spec)
        assert registry.run(model, ds, ["clean"]) == pytest.approx(want)


def test_one_attack_norm_can_be_skipped_with_an_empty_epsilon_list():
    from tfkit.config import ConfigError
    from tfkit.experiments.robustness import Config
    assert Config(l2_epsilons=()).l2_epsilons == ()
    assert Config(linf_epsilons=()).linf_epsilons == ()
    with pytest.raises(ConfigError, match="epsilon"):
        Config(linf_epsilons=(), l2_epsilons=())
    with pytest.raises(ConfigError, match="l2_epsilons"):
        Config(l2_epsilons=(0.0,))


def test_corrupt_on_a_grayscale_batch_names_its_shape_and_the_channel_axis():
    from tfkit.robustness.corruptions import CorruptionError, corrupt
    with pytest.raises(CorruptionError, match=r"\(4, 28, 28\).*channel axis"):
        corrupt(np.zeros((4, 28, 28), np.float32), "fog", 3)


def test_the_documented_per_element_seeds_give_each_single_image_its_own_noise():
    from tfkit.robustness.corruptions import corrupt, seed_pair
    x = np.full((3, 16, 16, 3), 0.5, np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(3)))
    ds = ds.enumerate().map(lambda i, xy: (corrupt(xy[0], "gaussian_noise", 3, seed_pair(0, i)),
                                           xy[1]))
    noise = [np.ravel(im - 0.5) for im, _ in ds]
    assert abs(np.corrcoef(noise[0], noise[1])[0, 1]) < 0.5


def test_eval_command_gives_a_model_that_rescales_itself_its_pixels(tmp_path):
    import json

    from tfkit.robustness.cli import eval_command
    w = np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32)
    dense = {"kernel_initializer": keras.initializers.Constant(w),
             "bias_initializer": keras.initializers.Constant(np.linspace(2, -2, 10))}
    inp = keras.Input((8, 8, 1))
    on_unit = keras.Model(inp, keras.layers.Dense(10, **dense)(keras.layers.Flatten()(inp)))
    rescaled = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inp))
    on_pixels = keras.Model(inp, keras.layers.Dense(10, **dense)(rescaled))
    results = []
    for name, model in (("unit", on_unit), ("pixels", on_pixels)):
        model.save(tmp_path / f"{name}.keras")
        eval_command(str(tmp_path / f"{name}.keras"), "digits", [], limit=64,
                     out=tmp_path / f"{name}.json")
        results.append(json.loads((tmp_path / f"{name}.json").read_text())["results"])
    assert results[1] == pytest.approx(results[0], abs=1e-6)


def test_a_uint8_input_model_given_float_images_gets_their_pixels_not_a_cast():
    # float [0, 1] images cast to a uint8 Input are all 0 or 1: the model saw black images
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 8, 8, 1)).astype(np.uint8)
    inp = keras.Input((8, 8, 1), dtype="uint8")
    mean = keras.layers.Lambda(lambda t: tf.reduce_mean(tf.cast(t, tf.float32), [1, 2, 3]))(inp)
    model = keras.Model(inp, keras.layers.Lambda(
        lambda m: tf.stack([127.5 - m, m - 127.5], -1))(mean))
    y = np.argmax(np.asarray(model(x)), -1)
    assert len(set(y)) == 2
    floats = registry.run(model, (x / np.float32(255), y), ["clean"])
    assert floats == registry.run(model, (x, y), ["clean"])
    assert floats["clean/accuracy"] == 1.0


def test_eval_command_refuses_an_out_it_cannot_write_before_any_work(tmp_path, monkeypatch,
                                                                     capsys):
    # was: every suite ran (minutes to hours), then writing results.json failed and lost them
    from tfkit import cli
    from tfkit.robustness import cli as robustness_cli

    model, _ = _models(classes=10)
    model.save(tmp_path / "m.keras")
    (tmp_path / "file").write_text("not a folder")
    ran = []
    monkeypatch.setattr(robustness_cli.registry, "run", lambda *a, **k: ran.append(1) or {})
    for out in ("file/eval", "file/r.json"):
        assert cli.main(["eval", "robustness", "--model", str(tmp_path / "m.keras"), "--data",
                         "digits", "--suite", "patch", "--out", str(tmp_path / out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("tfkit: error:") and str(tmp_path / "file") in err
    assert not ran


def test_the_layers_suite_gives_a_uint8_input_model_the_pixels_of_float_images_too():
    # clean did (round(x * 255)); the layers suite fed the chain [0, 1] values as pixels
    from tfkit.models.resnet import ResidualBlock
    from tfkit.robustness import model_perturbations as mp

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1), dtype="uint8")
    h = keras.layers.Conv2D(4, 3, padding="same", name="stem")(keras.layers.Rescaling(1 / 255)(inp))
    h = ResidualBlock(4, name="block_1")(ResidualBlock(4, name="block_0")(h))
    head = keras.layers.Dense(3, bias_initializer=keras.initializers.Constant([0.05, 0, 0]))
    model = keras.Model(inp, head(keras.layers.GlobalAveragePooling2D()(h)))  # on [0, 1]: 0
    x = np.random.default_rng(0).integers(0, 256, (48, 8, 8, 1)).astype(np.uint8)
    y = np.argmax(np.asarray(mp.remove_block(model, 0)(x.astype(np.float32))), -1)
    assert len(set(y)) > 1  # the labels are what the model says without block 0
    for data in ((x, y), (x / np.float32(255), y)):
        assert registry.run(model, data, ["layers"])["layers/remove_block/0"] == 1.0


def test_a_model_or_predict_fn_with_several_or_named_outputs_is_a_clear_error():
    # a dict output was a TypeError from TensorShape, a list was stacked into [2, B, K]
    from tfkit.robustness.inputs import EvaluationInputError

    x, y = _data(n=6)
    inp = keras.Input((8, 8, 1))
    logits = keras.layers.Dense(3)(keras.layers.Flatten()(inp))
    for model in (keras.Model(inp, {"logits": logits, "features": logits}),
                  keras.Model(inp, [logits, logits]),
                  lambda t: {"a": tf.reduce_mean(t, [1, 2]) * [[1.0, -1.0, 0.0]], "b": t}):
        with pytest.raises(EvaluationInputError, match="2 outputs.*one .batch, classes. output"):
            registry.run(model, (x, y), ["clean", "adversarial"])
    expected = registry.run(keras.Model(inp, logits), (x, y), ["clean"])  # one: unwrapped
    assert registry.run(keras.Model(inp, {"logits": logits}), (x, y), ["clean"]) == expected


def test_single_grey_hw_images_with_one_hot_labels_and_grey_batches_of_width_3():
    # [H, W] single images with one-hot labels were taken for a batch of rows; [B, H, 3]
    # grey batches (width 3, or 1) for single colour images
    x, y = _data(channels=1)
    model, _ = _models()
    want = registry.run(model, (x, y), ["clean"])
    single = tf.data.Dataset.from_tensor_slices((x[..., 0], np.eye(3)[y]))  # [8, 8], [3]
    assert registry.run(model, single, ["clean"]) == pytest.approx(want)
    inp = keras.Input((8, 3, 1))
    narrow = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(inp)))
    want = registry.run(narrow, (x[:, :, :3], y), ["clean"])
    batches = tf.data.Dataset.from_tensor_slices((x[:, :, :3, 0], y)).batch(5)  # [B, 8, 3]
    assert registry.run(narrow, batches, ["clean"]) == pytest.approx(want)


def test_an_endless_dataset_is_an_error_not_a_hang():
    # a training pipeline's .repeat() made every evaluator loop forever
    from tfkit.robustness.inputs import EvaluationInputError

    x, y = _data(n=6)
    model, _ = _models()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()
    with pytest.raises(EvaluationInputError, match=r"endless.*take"):
        registry.run(model, ds, ["clean"])


def test_eval_command_runs_the_clean_suite_once_when_asked_for_it(tmp_path, monkeypatch,
                                                                  capsys):
    from tfkit.robustness.cli import eval_command

    model, _ = _models(classes=10)
    model.save(tmp_path / "m.keras")
    clean, calls = registry.EVALUATORS["clean"], []

    def counting(*args, **kwargs):
        calls.append(1)
        yield from clean(*args, **kwargs)

    monkeypatch.setitem(registry.EVALUATORS, "clean", counting)
    assert eval_command(str(tmp_path / "m.keras"), "digits", ["clean"], limit=8) == 0
    assert len(calls) == 1
    assert capsys.readouterr().out.count("clean/accuracy: ") == 1


def test_eval_cli_imports_the_users_module_that_registers_a_custom_layer(tmp_path, capsys):
    from tests.export.test_user_sources import save_user_layer_model
    from tfkit.cli import main

    module, model = save_user_layer_model(tmp_path, "user_robustness_layers", side=8,
                                          classes=10)
    argv = ["eval", "robustness", "--model", str(model), "--data", "digits", "--suite",
            "clean", "--limit", "8"]
    assert main(argv) == 2
    assert "cannot load" in capsys.readouterr().err
    assert main([*argv, "--import", str(module)]) == 0
    assert "clean/accuracy" in capsys.readouterr().out
