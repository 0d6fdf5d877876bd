"""keras-nlp `TransformerEncoder` / `TransformerDecoder` with a Top-k sparse MLP.

The two keras-nlp MLP dense layers are swapped for one `tfkit.layers.FeedForward` (same widths,
activation and initializer) whose hidden activation is Top-k thresholded. Everything else
(attention, norms, dropout, masks, caches) is keras-nlp's own code, and `nonzero_fraction`
measures these blocks like tfkit's.
"""

from __future__ import annotations

import keras_nlp

from tfkit.backend import keras
from tfkit.layers import FeedForward

__all__ = ["TopKTransformerEncoder", "TopKTransformerDecoder", "to_top_k"]


def _swap_in_feed_forward(block: keras.layers.Layer, hidden_dim: int, input_shape) -> None:
    """Replaces keras-nlp's MLP dense pair by one FeedForward with Top-k (built, untrained)."""
    ff = FeedForward(block.intermediate_dim,
                     activation=keras.activations.serialize(block.activation),
                     top_k=block.top_k, dropout=0.0,  # keras-nlp applies its own dropout after
                     kernel_initializer=keras.initializers.serialize(block.kernel_initializer),
                     name="feed_forward", dtype=block.dtype_policy)
    ff.build(input_shape)
    block.feed_forward = ff
    block._feedforward_intermediate_dense = ff  # keras-nlp's call: output_dense(interm.(x))
    block._feedforward_output_dense = keras.layers.Identity(name="feedforward_identity")


@keras.utils.register_keras_serializable(package="tfkit")
class TopKTransformerEncoder(keras_nlp.layers.TransformerEncoder):
    """`keras_nlp.layers.TransformerEncoder` keeping the `top_k` largest MLP activations per token.

    Args:
        top_k: activations kept per token (None = the dense keras-nlp block, ReLU or not).
        **kwargs: `keras_nlp.layers.TransformerEncoder` arguments (intermediate_dim, num_heads,
            activation, ...).

    Example:
        >>> enc = TopKTransformerEncoder(top_k=4, intermediate_dim=32, num_heads=2)
        >>> enc(tf.zeros([2, 5, 8])).shape
        TensorShape([2, 5, 8])
    """

    def __init__(self, top_k: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.top_k = None if top_k is None else int(top_k)

    def build(self, inputs_shape):
        super().build(inputs_shape)
        _swap_in_feed_forward(self, int(inputs_shape[-1]), inputs_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "top_k": self.top_k}


@keras.utils.register_keras_serializable(package="tfkit")
class TopKTransformerDecoder(keras_nlp.layers.TransformerDecoder):
    """`keras_nlp.layers.TransformerDecoder` keeping the `top_k` largest MLP activations per token.

    Args:
        top_k: activations kept per token (None = dense).
        **kwargs: `keras_nlp.layers.TransformerDecoder` arguments.

    Example:
        >>> dec = TopKTransformerDecoder(top_k=4, intermediate_dim=32, num_heads=2)
        >>> dec(tf.zeros([2, 5, 8])).shape
        TensorShape([2, 5, 8])
    """

    def __init__(self, top_k: int | None = None, **kwargs):
        # keras-nlp builds a restored decoder inside __init__; top_k must be set first
        shapes = (kwargs.pop("decoder_sequence_shape", None),
                  kwargs.pop("encoder_sequence_shape", None))
        super().__init__(**kwargs)
        self.top_k = None if top_k is None else int(top_k)
        if shapes[0]:
            self.build(*shapes)

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        super().build(decoder_sequence_shape, encoder_sequence_shape)
        _swap_in_feed_forward(self, int(decoder_sequence_shape[-1]), decoder_sequence_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "top_k": self.top_k}


def to_top_k(layer: keras.layers.Layer, top_k: int | None) -> keras.layers.Layer:
    """A new Top-k twin of a keras-nlp TransformerEncoder/Decoder with the same config.

    Its weights are fresh, never copied from `layer`. An encoder twin comes back unbuilt; a
    decoder twin comes back built (with fresh weights) when `layer` was built, since
    keras-nlp's decoder config then records its input shape, and unbuilt otherwise.
    """
    if isinstance(layer, keras_nlp.layers.TransformerDecoder):
        return TopKTransformerDecoder.from_config({**layer.get_config(), "top_k": top_k})
    if isinstance(layer, keras_nlp.layers.TransformerEncoder):
        return TopKTransformerEncoder.from_config({**layer.get_config(), "top_k": top_k})
    raise TypeError(f"to_top_k expects a keras-nlp TransformerEncoder or TransformerDecoder, "
                    f"got {type(layer).__name__}")
