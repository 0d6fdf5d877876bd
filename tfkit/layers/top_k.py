"""Top-k activation: keep the k largest entries along the last axis, zero the rest."""

from __future__ import annotations

import numbers
from typing import Any

from tfkit.backend import keras, tf

__all__ = ["TopKActivation"]


def whole_k(k: Any, owner: str = "TopKActivation", arg: str = "k") -> int:
    """`k` as an int; a ValueError naming `owner` for anything but a whole number >= 1 (2.5,
    "2", None, 0, True); numpy numbers and whole floats (4.0) are taken."""
    whole = isinstance(k, numbers.Real) and not isinstance(k, bool) and float(k).is_integer()
    if not whole or k < 1:
        raise ValueError(f"{owner} needs a whole number {arg} >= 1, got {arg}={k!r}")
    return int(k)


@keras.utils.register_keras_serializable(package="tfkit")
class TopKActivation(keras.layers.Layer):
    """Keeps exactly the `k` largest values per position along the last axis.

    This is the Top-k thresholding of "The Lazy Neuron Phenomenon" (Li et al., ICLR 2023),
    applied to the MLP's hidden activation after ReLU. Exactly `k` entries survive even when
    values tie (the first ones by index win, as in `tf.math.top_k`); gradients flow through the
    kept entries only. With `k >= width` the layer is the identity.

    Args:
        k: how many entries to keep per position.

    Example:
        >>> layer = TopKActivation(k=2)
        >>> layer(tf.constant([[3.0, 1.0, 5.0, 0.5]])).numpy()
        array([[3., 0., 5., 0.]], dtype=float32)
    """

    def __init__(self, k: int, **kwargs):
        super().__init__(**kwargs)
        self.k = whole_k(k)
        self.supports_masking = True

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        width = inputs.shape[-1]
        if width is not None and self.k >= width:
            return inputs
        # Scatter ones at the top-k positions: O(tokens * k) memory, exactly k per position.
        shape = tf.shape(inputs)
        flat = tf.reshape(inputs, [-1, shape[-1]])
        # a width known only at run time may be <= k: then every entry is kept (the identity)
        k = self.k if width is not None else tf.minimum(self.k, shape[-1])
        _, indices = tf.math.top_k(flat, k=k, sorted=False)
        rows = tf.broadcast_to(tf.range(tf.shape(flat)[0])[:, None], tf.shape(indices))
        coords = tf.reshape(tf.stack([rows, indices], axis=-1), [-1, 2])
        ones = tf.ones([tf.shape(coords)[0]], inputs.dtype)
        mask = tf.reshape(tf.scatter_nd(coords, ones, tf.shape(flat)), shape)
        return inputs * tf.stop_gradient(mask)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "k": self.k}
