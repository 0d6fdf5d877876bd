"""What a user's own model meets: empty data, dict inputs, dtypes, bad monitor / config values."""

import numpy as np
import pytest

from tfkit.backend import keras, tf
from tfkit.config import ConfigError
from tfkit.experiments.lazy_neuron import Config
from tfkit.layers import FeedForward
from tfkit.sparsity import (
    MeasureError,
    SparsityMonitor,
    dead_fraction,
    gathered_top_k,
    latency_ms,
    max_abs_diff,
    nonzero_fraction,
    predict_tflite,
    to_tflite,
)
from tfkit.sparsity.keras_nlp_blocks import TopKTransformerEncoder


def _mlp_model():
    inputs = keras.Input((5, 8))
    return keras.Model(inputs, FeedForward(32, top_k=4, name="mlp")(inputs))


def test_empty_data_is_an_error_not_a_zero_fraction():
    model, x = _mlp_model(), np.zeros((0, 5, 8), "float32")
    with pytest.raises(MeasureError, match="no tokens"):
        nonzero_fraction(model, x)
    with pytest.raises(MeasureError, match="no tokens"):
        nonzero_fraction(model, np.ones((2, 5, 8), "float32"), max_batches=0)
    with pytest.raises(MeasureError, match="no tokens"):
        dead_fraction(model, x)


def test_all_padding_is_an_error_not_a_zero_fraction():
    ids = keras.Input((4,), dtype="int32")
    model = keras.Model(ids, FeedForward(16)(keras.layers.Embedding(10, 8)(ids)))
    with pytest.raises(MeasureError, match="no tokens"):
        nonzero_fraction(model, np.zeros((2, 4), "int32"), pad_id=0)


def _dict_model():
    inputs = {"token_ids": keras.Input((4,), dtype="int32", name="token_ids"),
              "padding_mask": keras.Input((4,), dtype="bool", name="padding_mask")}
    x = keras.layers.Embedding(10, 8)(inputs["token_ids"])
    ff = FeedForward(16, name="mlp")
    return keras.Model(inputs, ff(x)), ff


def test_dict_inputs_use_their_padding_mask():
    model, ff = _dict_model()
    ids = np.array([[1, 2, 0, 0], [3, 4, 5, 0], [6, 0, 0, 0]], "int32")
    data = {"token_ids": ids, "padding_mask": ids != 0}
    h = ff.intermediate(model.layers[1](ids)).numpy()  # the embedding layer feeds the MLP
    expected = np.count_nonzero(h[ids != 0]) / (np.sum(ids != 0) * 16)
    got = nonzero_fraction(model, data, batch_size=2)
    assert got["mlp"] == pytest.approx(expected)
    # the same through tf.data, and with pad_id instead of a mask
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(2)
    assert nonzero_fraction(model, dataset)["mlp"] == pytest.approx(expected)
    assert nonzero_fraction(model, {"token_ids": ids, "padding_mask": np.ones_like(ids, bool)},
                            pad_id=0)["mlp"] == pytest.approx(expected)
    assert 0.0 <= dead_fraction(model, data)["mlp"] <= 1.0


def test_monitor_refuses_a_zero_interval():
    with pytest.raises(ValueError, match="every_n_steps"):
        SparsityMonitor({"test": np.zeros((2, 5, 8), "float32")}, every_n_steps=0)


@pytest.mark.parametrize("field, value", [
    ("probe_every_steps", 0), ("topk_divisors", (16, 0)), ("tflite_divisor", 0),
    ("prune_sparsity", 1.0), ("label_noise", (1.2,)), ("latency_runs", 0)])
def test_config_refuses_values_that_would_crash_mid_run(field, value):
    with pytest.raises(ConfigError, match=field):
        Config(**{field: value})


def test_feed_forward_honours_its_dtype():
    ff = FeedForward(16, top_k=4, dtype="bfloat16")
    out = ff(tf.ones([2, 3, 8]))
    assert out.dtype == tf.bfloat16
    assert {w.dtype for w in ff.weights} == {tf.bfloat16}
    enc = TopKTransformerEncoder(top_k=4, intermediate_dim=16, num_heads=2, dtype="bfloat16")
    enc(tf.ones([2, 3, 8]))
    assert {w.dtype for w in enc.weights} == {tf.bfloat16}


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.ff = FeedForward(16, top_k=4)
        self.head = keras.layers.Dense(3)

    def call(self, x):
        return self.head(tf.reduce_mean(self.ff(x), axis=1))


def test_static_batch_tflite_of_a_subclassed_model():
    model = _Subclassed()
    x = np.random.default_rng(0).random((3, 5, 8)).astype("float32")
    model(x)
    flat = to_tflite(model, batch_size=1)
    np.testing.assert_allclose(predict_tflite(flat, x), model(x).numpy(), atol=1e-5)
    # without batch_size the batch stays dynamic (not the first call's 3)
    dynamic = tf.lite.Interpreter(model_content=to_tflite(model)).get_input_details()[0]
    assert list(dynamic["shape_signature"]) == [-1, 5, 8]
    with pytest.raises(ValueError, match="call the model"):
        to_tflite(_Subclassed(), batch_size=1)



def test_a_static_batch_above_1_predicts_and_checks_parity():
    # to_tflite(batch_size=2): the shapes are folded for 2 rows, so the interpreter cannot be
    # resized to batch 1; rows run in groups of 2 (5 rows: the last group padded)
    model = _mlp_model()
    x = np.random.default_rng(0).random((5, 5, 8)).astype("float32")
    for flat in (to_tflite(model, batch_size=2), to_tflite(gathered_top_k(model), batch_size=2)):
        np.testing.assert_allclose(predict_tflite(flat, x), model(x).numpy(), atol=1e-5)
        assert max_abs_diff(model, flat, x) <= 1e-5
        assert set(latency_ms(flat, x[:1], runs=2, warmup=1)) == {"median_ms", "p90_ms"}

def test_gathered_top_k_of_a_subclassed_model_is_a_clear_error():
    model = _Subclassed()
    model(np.zeros((1, 5, 8), "float32"))
    with pytest.raises(ValueError, match="functional"):
        gathered_top_k(model)


def test_predict_on_no_rows_returns_no_rows():
    model = _mlp_model()
    flat = to_tflite(model, batch_size=1)
    assert predict_tflite(flat, np.zeros((0, 5, 8), "float32")).shape == (0, 5, 8)


def test_dead_fraction_of_a_feed_forward_on_flat_features():
    inputs = keras.Input((4,))
    ff = FeedForward(8, name="mlp")
    model = keras.Model(inputs, ff(inputs))
    ff.intermediate_dense.kernel.assign(np.eye(4, 8, dtype="float32"))  # neurons 4..7 never fire
    x = np.abs(np.random.default_rng(0).normal(size=(6, 4))).astype("float32") + 0.1
    assert dead_fraction(model, x)["mlp"] == pytest.approx(0.5)
    assert nonzero_fraction(model, x)["mlp"] == pytest.approx(0.5)


@pytest.mark.parametrize("keep_fraction", [0.0, 10.0])
def test_prune_neurons_refuses_a_fraction_outside_0_1(keep_fraction):
    from tfkit.models import ViT
    from tfkit.sparsity.pruning import prune_neurons

    vit = ViT(image_size=8, patch_size=4, num_layers=1, hidden_dim=16, num_heads=2,
              intermediate_dim=32, channels=1, activation="relu", num_classes=3)
    with pytest.raises(ValueError, match="keep_fraction"):
        prune_neurons(vit, keep_fraction, np.zeros((2, 8, 8, 1), "float32"))


@pytest.mark.parametrize("every", [2, 3])  # 3: the resume step (4) is not a probe step
def test_resumed_fit_probed_keeps_the_probes_before_the_interruption(tmp_path, every):
    from tfkit.backend import set_seed
    from tfkit.sparsity.probed import compile_classifier, fit_probed

    x = np.random.default_rng(0).random((16, 5, 8)).astype("float32")
    y = np.arange(16) % 3

    def fit(directory, epochs):
        set_seed(0)
        inputs = keras.Input((5, 8))
        pooled = keras.layers.GlobalAveragePooling1D()(FeedForward(16, name="mlp")(inputs))
        model = compile_classifier(keras.Model(inputs, keras.layers.Dense(3)(pooled)), 1e-2)
        return fit_probed(model, x, {"test": x}, directory, epochs, every_n_steps=every, y=y,
                          batch_size=4, shuffle=False, verbose=0)["over_training"]

    whole = fit(tmp_path / "whole", 2)
    fit(tmp_path / "resumed", 1)  # the run stops after epoch 1 (Ctrl-C), then resumes:
    resumed = fit(tmp_path / "resumed", 2)
    steps = {2: [0, 2, 4, 6, 8], 3: [0, 3, 6, 8]}[every]  # every n steps, and at the end
    assert [r["step"] for r in resumed] == [r["step"] for r in whole] == steps
    np.testing.assert_allclose([r["nonzero_fraction_per_layer"] for r in resumed],
                               [r["nonzero_fraction_per_layer"] for r in whole], atol=1e-6)
    assert fit(tmp_path / "resumed", 2) == resumed  # finished: the probes come from disk


def test_gathered_top_k_of_a_functional_model_built_on_feed_forward_layers():
    # the user's own model: FeedForward as a layer of keras.Model(inputs, outputs)
    inputs = keras.Input((5, 8))
    hidden = FeedForward(32, top_k=4, name="mlp")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(FeedForward(16, name="dense_mlp")(hidden)))
    x = np.random.default_rng(0).random((4, 5, 8)).astype("float32")
    fast = gathered_top_k(model)
    assert [type(layer).__name__ for layer in fast.layers[1:3]] == [
        "GatheredFeedForward", "FeedForward"]  # the dense MLP stays as it was
    np.testing.assert_allclose(fast(x).numpy(), model(x).numpy(), atol=1e-5)
    flat = to_tflite(fast, batch_size=1)
    np.testing.assert_allclose(predict_tflite(flat, x), model(x).numpy(), atol=1e-5)


def test_a_mixed_precision_model_is_a_clear_error_not_a_converter_dump():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((5, 8))
        half = keras.Model(inputs, FeedForward(32, top_k=4, name="mlp")(inputs))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    with pytest.raises(ValueError, match="float16.*set_global_policy\\('float32'\\)"):
        to_tflite(half, batch_size=1)
    from tfkit.export import ExportError, convert

    with pytest.raises(ExportError, match="float16"):  # `tfkit export tflite`'s path too
        convert(half, "float32")
    full = _mlp_model()  # the documented way out: same weights under float32
    full.set_weights(half.get_weights())
    x = np.random.default_rng(0).random((2, 5, 8)).astype("float32")
    np.testing.assert_allclose(predict_tflite(to_tflite(full, batch_size=1), x),
                               full(x).numpy(), atol=1e-5)
