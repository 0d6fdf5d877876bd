import numpy as np
import pytest

from tests.helpers import run_layer_test
from tfkit.backend import tf
from tfkit.layers import (
    ClassToken,
    FeedForward,
    PositionEmbedding,
    TopKActivation,
    TransformerBlock,
)


def test_top_k_keeps_exactly_k_even_with_ties():
    x = tf.constant([[1.0, 1.0, 1.0, 0.5], [3.0, -1.0, 5.0, 0.5]])
    y = TopKActivation(2)(x).numpy()
    assert (np.count_nonzero(y, axis=-1) == 2).all()
    np.testing.assert_allclose(y[1], [3.0, 0.0, 5.0, 0.0])


def test_top_k_gradient_flows_through_kept_entries_only():
    x = tf.Variable([[3.0, -1.0, 5.0, 0.5]])
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(TopKActivation(2)(x) * tf.constant([[1.0, 2.0, 3.0, 4.0]]))
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [[1.0, 0.0, 3.0, 0.0]])


def test_top_k_layer_roundtrip():
    run_layer_test(TopKActivation, {"k": 3}, tf.random.normal([2, 4, 8]), (2, 4, 8))


def test_feed_forward_roundtrip_and_sparsity():
    layer = run_layer_test(FeedForward, {"intermediate_dim": 16, "top_k": 4},
                           tf.random.normal([2, 3, 8]), (2, 3, 8))
    h = layer.intermediate(tf.random.normal([2, 3, 8])).numpy()
    assert (np.count_nonzero(h, axis=-1) <= 4).all()


def test_transformer_block_roundtrip():
    run_layer_test(TransformerBlock, {"num_heads": 2, "intermediate_dim": 16, "causal": True},
                   tf.random.normal([2, 5, 8]), (2, 5, 8))


def test_causal_block_ignores_future_tokens():
    block = TransformerBlock(num_heads=2, intermediate_dim=16, causal=True)
    x = tf.random.normal([1, 6, 8])
    y1 = block(x).numpy()
    x2 = tf.concat([x[:, :4], tf.random.normal([1, 2, 8])], axis=1)
    np.testing.assert_allclose(block(x2).numpy()[:, :4], y1[:, :4], atol=1e-5)


def test_kv_cache_matches_full_attention():
    block = TransformerBlock(num_heads=2, intermediate_dim=16, causal=True)
    x = tf.random.normal([2, 6, 8])
    full = block(x).numpy()
    cache = tf.zeros([2, 2, 2, 6, 4])
    out, cache = block(x[:, :4], cache=cache, cache_index=0)
    steps = [out.numpy()]
    for t in (4, 5):
        out, cache = block(x[:, t:t + 1], cache=cache, cache_index=t)
        steps.append(out.numpy())
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


def test_class_token_and_positions_roundtrip():
    run_layer_test(ClassToken, {}, tf.random.normal([2, 4, 8]), (2, 5, 8))
    run_layer_test(PositionEmbedding, {"sequence_length": 6}, tf.random.normal([2, 4, 8]),
                   (2, 4, 8))


def test_position_embedding_positions_and_length_check():
    layer = PositionEmbedding(6)
    x = tf.zeros([2, 3, 4])
    sliced = layer(x, start_index=2).numpy()
    table = layer.embeddings.numpy()
    np.testing.assert_array_equal(sliced[0], table[2:5])
    gathered = layer(x, positions=tf.constant([[0, 0, 1], [3, 4, 5]])).numpy()
    np.testing.assert_array_equal(gathered[0], table[[0, 0, 1]])
    np.testing.assert_array_equal(gathered[1], table[3:6])
    with pytest.raises(ValueError, match="longer than the position table"):
        layer(tf.zeros([1, 7, 4]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="longer than the position table"):
        tf.function(lambda t: layer(t), input_signature=[tf.TensorSpec([None, None, 4])])(
            tf.zeros([1, 7, 4]))


def test_top_k_of_unknown_width_below_k_is_the_identity_as_documented():
    # k >= width is the identity; a width known only at run time must not fail in TopKV2
    layer = TopKActivation(9)
    dynamic = tf.function(layer, input_signature=[tf.TensorSpec([None, None], tf.float32)])
    x = tf.constant([[3.0, 1.0, 5.0, 0.5]])
    np.testing.assert_allclose(dynamic(x).numpy(), x.numpy())
    kept = tf.function(TopKActivation(2), input_signature=[tf.TensorSpec([None, None])])(x)
    np.testing.assert_allclose(kept.numpy(), [[3.0, 0.0, 5.0, 0.0]])


@pytest.mark.parametrize("k", [2.5, None, "two"])
def test_top_k_refuses_a_k_that_is_not_a_whole_number(k):
    with pytest.raises(ValueError, match="TopKActivation needs a whole number k >= 1"):
        TopKActivation(k)
    if k is not None:  # FeedForward(top_k=None) is the dense MLP
        with pytest.raises(ValueError, match="FeedForward needs a whole number top_k"):
            FeedForward(8, top_k=k)  # at construction, not truncated to int(k)


def test_top_k_takes_whole_numbers_of_any_numeric_type():
    for k in (3, 3.0, np.int64(3), np.float32(3.0)):
        assert TopKActivation(k).k == 3 and FeedForward(8, top_k=k).top_k == 3
