import keras_nlp
import numpy as np
import pytest

from tests.helpers import run_layer_test
from tfkit.backend import keras, tf
from tfkit.sparsity import nonzero_fraction
from tfkit.sparsity.keras_nlp_blocks import (
    TopKTransformerDecoder,
    TopKTransformerEncoder,
    to_top_k,
)


@pytest.mark.parametrize("cls", [TopKTransformerEncoder, TopKTransformerDecoder])
def test_round_trip(cls):
    run_layer_test(cls, {"top_k": 4, "intermediate_dim": 32, "num_heads": 2},
                   tf.random.normal([2, 5, 8]), (2, 5, 8))


def test_measure_keras_nlp_model_and_top_k_is_exact():
    ids = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(20, 16, mask_zero=True)(ids)
    x = TopKTransformerEncoder(top_k=4, intermediate_dim=32, num_heads=2, name="enc")(x)
    x = to_top_k(keras_nlp.layers.TransformerDecoder(32, 2, name="dec"), 8)(x)
    model = keras.Model(ids, keras.layers.Dense(20)(x))
    tokens = np.random.default_rng(0).integers(1, 20, (3, 7)).astype("int32")
    fractions = nonzero_fraction(model, tokens)
    assert list(fractions) == ["enc", "dec"]
    assert fractions["enc"] <= 4 / 32 and fractions["dec"] <= 8 / 32
    assert fractions["dec"] > 4 / 32  # ReLU keeps most of the 8 winners on random inputs
    dense = keras_nlp.layers.TransformerEncoder(32, 2)
    assert to_top_k(dense, None).top_k is None


def test_trains_and_only_the_top_k_feed_forward_weights_exist():
    enc = TopKTransformerEncoder(top_k=4, intermediate_dim=32, num_heads=2)
    enc(tf.zeros([1, 5, 8]))
    assert len(enc.weights) == 16  # 8 attention + 2 x 2 norms + 4 feed-forward (K, V, biases)
    shapes = sorted(tuple(w.shape) for w in enc.feed_forward.weights)
    assert shapes == [(8,), (8, 32), (32,), (32, 8)]
    inputs = keras.Input((5, 8))
    model = keras.Model(inputs, enc(inputs))
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(8, 5, 8)).astype("float32")
    loss = model.fit(x, x, epochs=3, verbose=0).history["loss"]
    assert loss[-1] < loss[0]


def test_to_top_k_twin_has_fresh_weights_and_builds_as_documented():
    enc = keras_nlp.layers.TransformerEncoder(16, 2)
    dec = keras_nlp.layers.TransformerDecoder(16, 2)
    for layer in (enc, dec):
        layer(tf.zeros([1, 3, 8]))
    assert not to_top_k(enc, 4).built
    twin = to_top_k(dec, 4)
    assert twin.built  # the decoder config records its input shape: built, with fresh weights
    mine = {w.name.split("/", 1)[-1]: w.numpy() for w in twin.weights}
    theirs = {w.name.split("/", 1)[-1]: w.numpy() for w in dec.weights}
    kernels = [n for n in theirs if n.endswith("kernel:0") and n in mine]
    assert kernels and not any(np.array_equal(mine[n], theirs[n]) for n in kernels)
