"""Prepends a learned [CLS] token to a sequence."""

from __future__ import annotations

from tfkit.backend import keras, tf

__all__ = ["ClassToken"]


@keras.utils.register_keras_serializable(package="tfkit")
class ClassToken(keras.layers.Layer):
    """Prepends one learned vector (the ViT [CLS] token): [B, N, D] -> [B, N + 1, D].

    Example:
        >>> ClassToken()(tf.zeros([2, 4, 8])).shape
        TensorShape([2, 5, 8])
    """

    def build(self, input_shape):
        self.token = self.add_weight(name="token", shape=(1, 1, int(input_shape[-1])),
                                     initializer="zeros")
        super().build(input_shape)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        token = tf.cast(tf.tile(self.token, [tf.shape(x)[0], 1, 1]), x.dtype)
        return tf.concat([token, x], axis=1)

    def compute_output_shape(self, input_shape):
        n = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], n, input_shape[2])
