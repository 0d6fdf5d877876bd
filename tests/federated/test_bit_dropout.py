"""Dropout masks from random bits (`bit_dropout`) and the party option that uses them."""

from __future__ import annotations

import numpy as np
import pytest

from tfkit.backend import keras, set_seed, tf
from tfkit.federated.fedmd import Party, paper_cnn
from tfkit.federated.fedmd.bit_dropout import bit_dropout, dropout_layers, effective_rate


def test_effective_rate_rounds_to_the_bits():
    assert effective_rate(0.2, 8) == 51 / 256
    assert abs(effective_rate(0.2, 16) - 0.2) < 2 ** -17
    assert effective_rate(0.0, 8) == 0.0
    with pytest.raises(ValueError, match="bits"):
        effective_rate(0.2, 4)
    with pytest.raises(ValueError, match="rate"):
        effective_rate(1.0, 8)


@pytest.mark.parametrize("bits", [8, 16])
def test_bit_dropout_drops_at_its_rate_and_stays_unbiased(bits):
    x = tf.ones([64, 32, 32])  # 65,536 units
    y = bit_dropout(x, 0.3, tf.random.Generator.from_seed(1), bits).numpy()
    rate = effective_rate(0.3, bits)
    dropped = np.mean(y == 0)
    assert abs(dropped - rate) < 4 * np.sqrt(rate * (1 - rate) / y.size)  # within 4 sigma
    np.testing.assert_allclose(y[y != 0], 1 / (1 - rate), rtol=1e-6)
    assert abs(y.mean() - 1) < 0.02
    # every piece of each 32-bit number decides its own unit: no pattern along the last axis
    per_position = (y == 0).reshape(-1, 32).mean(0)
    assert per_position.min() > rate - 0.05 and per_position.max() < rate + 0.05


def test_bit_dropout_refuses_a_last_axis_it_cannot_cut():
    with pytest.raises(ValueError, match="multiple of 4"):
        bit_dropout(tf.ones([2, 3]), 0.5, tf.random.Generator.from_seed(0), 8)
    x = tf.ones([2, 4])
    assert bit_dropout(x, 0.001, tf.random.Generator.from_seed(0), 8) is x  # rounds to 0


def test_only_plain_dropout_layers_with_cuttable_inputs_are_redirected():
    inputs = keras.Input((6, 8))
    a = keras.layers.Dropout(0.2)(inputs)
    b = keras.layers.SpatialDropout1D(0.2)(a)
    c = keras.layers.Dropout(0.2, noise_shape=(None, 1, 8))(b)
    d = keras.layers.Dense(3)(c)
    e = keras.layers.Dropout(0.2)(d)  # 3 units: not a multiple of 4
    model = keras.Model(inputs, keras.layers.Dropout(0.0)(e))
    assert [layer.name for layer in dropout_layers(model, 8)] == [model.layers[1].name]


def _dense_party(bits, seed=0):
    set_seed(0)
    model = keras.Sequential([keras.Input((4, 4)), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dropout(0.5), keras.layers.Dense(16)])
    rng = np.random.default_rng(0)
    return Party("p", model, rng.random((8, 4, 4), dtype=np.float32), np.arange(8) % 16,
                 dropout_bits=bits, seed=seed)


def _ops(party):
    x = tf.TensorSpec([None, 4, 4], tf.float32)
    graph = party._digest_step.get_concrete_function(x, tf.TensorSpec([None, 16])).graph
    return {op.type for op in graph.get_operations()} | {
        op.type for f in graph._functions.values() for op in f.graph.get_operations()}


def test_party_steps_draw_bits_and_leave_the_model_to_keras():
    ops = _ops(_dense_party(8))
    assert "StatelessRandomUniformFullIntV2" in ops and "RandomUniform" not in ops
    assert "RandomUniform" in _ops(_dense_party(None))
    party = _dense_party(8)
    layer = party._dropout_layers[0]
    party.digest(np.zeros((4, 4, 4), np.float32), np.zeros((4, 16), np.float32))
    assert "call" not in vars(layer)  # Keras' own call is back once the step is traced
    with pytest.raises(ValueError, match="dropout_bits"):
        _dense_party(4)
    no_dropout = keras.Sequential([keras.Input((4, 4)), keras.layers.Flatten(),
                                   keras.layers.Dense(16)])
    with pytest.raises(ValueError, match="no plain Dropout layer"):
        Party("p", no_dropout, np.zeros((2, 4, 4), np.float32), [0, 1], dropout_bits=8)


def test_dropout_masks_resume_from_the_party_state():
    x = np.random.default_rng(1).random((64, 4, 4), dtype=np.float32)
    target = np.random.default_rng(2).normal(size=(64, 16)).astype(np.float32)
    whole = _dense_party(8)
    whole.digest(x, target)
    state = whole.get_state()
    assert len(state["dropout_rng"]) == 1
    whole.digest(x, target)
    resumed = _dense_party(8)
    resumed.set_state(state)
    resumed.digest(x, target)
    for a, b in zip(whole.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    other_seed = _dense_party(8, seed=1)
    other_seed.set_state({**state, "dropout_rng": [other_seed._dropout_generators[0].state]})
    other_seed.digest(x, target)  # same weights, other masks: another update
    assert not np.allclose(whole.model.get_weights()[0], other_seed.model.get_weights()[0])
    with pytest.raises(ValueError, match="dropout mask generators"):
        _dense_party(None).set_state(state)


def test_paper_cnn_party_trains_with_bit_masks():
    model = paper_cnn(0, width=0.125)
    assert len(dropout_layers(model, 8)) == 2
    rng = np.random.default_rng(0)
    party = Party("p", model, rng.random((10, 28, 28), dtype=np.float32), np.arange(10),
                  private_batch_size=5, dropout_bits=16, digest_batch_norm="moving",
                  digest_micro_batch_size=4)
    before = party.model.get_weights()[0].copy()
    assert np.isfinite(party.train_private(1))
    assert np.isfinite(party.digest(rng.random((12, 28, 28), dtype=np.float32),
                                    rng.normal(size=(12, 16)).astype(np.float32)))
    assert not np.allclose(before, party.model.get_weights()[0])
