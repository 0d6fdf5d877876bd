import numpy as np
import pytest

from tfkit.backend import keras, tf
from tfkit.layers import FeedForward
from tfkit.models import DecoderLM, ViT
from tfkit.sparsity import (
    MeasureError,
    SparsityMonitor,
    dead_fraction,
    feed_forward_layers,
    mlp_flops,
    model_mlp_flops,
    nonzero_fraction,
)


def _vit(top_k=None, width=32):
    return ViT(image_size=8, patch_size=4, num_layers=2, hidden_dim=16, num_heads=2,
               intermediate_dim=width, channels=1, activation="relu", top_k=top_k)


def test_counts_match_a_manual_count_on_a_top_level_feed_forward():
    inputs = keras.Input((5, 8))
    ff = FeedForward(32, name="mlp")
    model = keras.Model(inputs, keras.layers.Dense(3)(ff(inputs)))
    x = np.random.default_rng(0).normal(size=(6, 5, 8)).astype("float32")
    expected = np.count_nonzero(ff.intermediate(x).numpy()) / (6 * 5 * 32)
    got = nonzero_fraction(model, x, batch_size=4)  # two batches, uneven
    assert list(got) == ["mlp"]
    assert got["mlp"] == pytest.approx(expected)
    assert 0.2 < expected < 0.8  # a random ReLU layer is about half active


def test_dead_fraction_counts_neurons_silent_on_every_token():
    inputs = keras.Input((5, 8))
    ff = FeedForward(32, name="mlp")
    model = keras.Model(inputs, keras.layers.Dense(3)(ff(inputs)))
    bias = ff.intermediate_dense.bias
    bias.assign(tf.concat([tf.fill([8], -1e3), bias[8:]], 0))  # 8 neurons can never fire
    x = np.random.default_rng(0).normal(size=(6, 5, 8)).astype("float32")
    expected = 1.0 - np.mean(np.any(ff.intermediate(x).numpy().reshape(-1, 32) != 0, axis=0))
    got = dead_fraction(model, x, batch_size=4)  # two batches: activity is OR-ed across them
    assert list(got) == ["mlp"]
    assert got["mlp"] == pytest.approx(expected)
    assert got["mlp"] >= 8 / 32


def test_top_k_vit_is_at_most_k_over_width_and_probe_is_removed():
    model = _vit(top_k=4)
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    before = model(x).numpy()
    fractions = nonzero_fraction(model, x)
    assert list(fractions) == ["block_0", "block_1"]
    assert all(0 < f <= 4 / 32 for f in fractions.values())
    assert all("call" not in vars(ff) for _, ff in feed_forward_layers(model))
    np.testing.assert_allclose(model(x).numpy(), before)


def test_lm_padding_is_excluded():
    lm = DecoderLM(vocabulary_size=20, sequence_length=16, num_layers=2, hidden_dim=16,
                   num_heads=2, intermediate_dim=32, activation="relu")
    real = np.random.default_rng(0).integers(1, 20, (3, 6)).astype("int32")
    padded = np.concatenate([real, np.zeros((3, 4), "int32")], axis=1)  # right padding
    # causal attention: real tokens never see the later pads, so their activations match
    on_real = nonzero_fraction(lm, real)
    on_padded = nonzero_fraction(lm, padded)
    for name in on_real:
        assert on_padded[name] == pytest.approx(on_real[name], abs=1e-6)
    with_pads = nonzero_fraction(lm, padded, pad_id=-1)  # count every position
    assert any(abs(with_pads[n] - on_real[n]) > 1e-4 for n in on_real)


def test_lm_padding_is_excluded_from_dead_neurons():
    lm = DecoderLM(vocabulary_size=20, sequence_length=16, num_layers=2, hidden_dim=16,
                   num_heads=2, intermediate_dim=32, activation="relu")
    real = np.array([[3, 7]], "int32")
    padded = np.concatenate([real, np.zeros((1, 10), "int32")], axis=1)
    on_real = dead_fraction(lm, real)
    assert dead_fraction(lm, padded) == pytest.approx(on_real)
    with_pads = dead_fraction(lm, padded, pad_id=-1)  # count every position
    assert any(with_pads[n] < on_real[n] for n in on_real)


def test_padding_mask_that_does_not_fit_the_activations_is_an_error():
    ids = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, 8)(ids)
    x = keras.layers.Lambda(lambda t: tf.concat([tf.zeros_like(t[:, :2]), t], 1))(x)  # a prefix
    model = keras.Model(ids, keras.layers.Dense(3)(FeedForward(16, name="mlp")(x)))
    x = np.array([[1, 2, 3, 0]], "int32")
    for measure in (nonzero_fraction, dead_fraction):
        with pytest.raises(MeasureError, match="pad_id=None"):
            measure(model, x, pad_id=0)
        assert list(measure(model, x)) == ["mlp"]  # no pad id: every position counts


def test_monitor_logs_over_steps_and_writes_tensorboard(tmp_path):
    model = _vit()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).random((32, 8, 8, 1)).astype("float32")
    y = np.arange(32) % 10
    monitor = SparsityMonitor({"train": x[:8], "test": x[8:16]}, every_n_steps=2,
                              log_dir=tmp_path)
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[monitor], verbose=0)
    steps = sorted({h["step"] for h in monitor.history})
    assert steps == [0, 2, 4, 6, 8]
    assert {h["split"] for h in monitor.history} == {"train", "test"}
    assert all(len(h["nonzero_fraction_per_layer"]) == 2 for h in monitor.history)
    assert list(tmp_path.glob("events.out.tfevents.*"))
    events = [v.tag for e in tf.compat.v1.train.summary_iterator(
        str(next(tmp_path.glob("events.*")))) for v in e.summary.value]
    assert "sparsity/test/block_1" in events and "sparsity/train/mean" in events



@pytest.mark.parametrize("steps_per_execution, steps", [(1, [0, 2, 4, 6, 8, 10]),
                                                        (3, [0, 3, 6, 9, 10])])
def test_monitor_steps_are_optimizer_steps_under_steps_per_execution(steps_per_execution,
                                                                     steps):
    # compile(steps_per_execution=n) calls the batch hooks once per n steps: the monitor
    # must still count (and label its probes with) optimizer steps
    inputs = keras.Input((5, 8))
    pooled = keras.layers.GlobalAveragePooling1D()(FeedForward(16, name="mlp")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(pooled))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps_per_execution)
    x = np.random.default_rng(0).random((20, 5, 8)).astype("float32")
    monitor = SparsityMonitor({"test": x[:4]}, every_n_steps=2)
    model.fit(x, np.arange(20) % 3, batch_size=2, callbacks=[monitor], verbose=0)  # 10 steps
    assert int(model.optimizer.iterations.numpy()) == 10
    assert [h["step"] for h in monitor.history] == steps  # probes where a multiple of 2 passed

def test_flops_dense_vs_top_k():
    dense = mlp_flops(tokens=10, hidden_dim=8, intermediate_dim=32)
    assert dense.first == dense.second == 2 * 10 * 8 * 32
    sparse = mlp_flops(tokens=10, hidden_dim=8, intermediate_dim=32, top_k=4)
    assert sparse.first == dense.first and sparse.second == 2 * 10 * 8 * 4
    per_layer = model_mlp_flops(_vit(top_k=4), tokens=5)
    assert list(per_layer) == ["block_0", "block_1"]
    assert per_layer["block_0"] == mlp_flops(5, 16, 32, 4)
