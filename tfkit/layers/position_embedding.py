"""Adds learned position embeddings to a sequence."""

from __future__ import annotations

from tfkit.backend import keras, tf

__all__ = ["PositionEmbedding"]


@keras.utils.register_keras_serializable(package="tfkit")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned [sequence_length, D] table to inputs of length ≤ `sequence_length`.

    `call(x, start_index=i)` adds the rows `i .. i + length - 1` (for cached decoding).

    Args:
        sequence_length: the longest sequence the table covers.
        initializer: initializer of the table.

    Example:
        >>> PositionEmbedding(16)(tf.zeros([2, 5, 8])).shape
        TensorShape([2, 5, 8])
    """

    def __init__(self, sequence_length: int, initializer: str = "glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = int(sequence_length)
        self.initializer = initializer

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.sequence_length, int(input_shape[-1])),
            initializer=keras.initializers.get(self.initializer))
        super().build(input_shape)

    def call(self, x: tf.Tensor, start_index: int | tf.Tensor = 0) -> tf.Tensor:
        length = tf.shape(x)[1]
        table = tf.slice(self.embeddings, [start_index, 0], [length, -1])
        return x + tf.cast(table[None], x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "sequence_length": self.sequence_length,
                "initializer": self.initializer}
