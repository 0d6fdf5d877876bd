"""Adds learned position embeddings to a sequence."""

from __future__ import annotations

from tfkit.backend import keras, tf

__all__ = ["PositionEmbedding"]


@keras.utils.register_keras_serializable(package="tfkit")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned [sequence_length, D] table to inputs of length ≤ `sequence_length`.

    `call(x, start_index=i)` adds the rows `i .. i + length - 1` (for cached decoding);
    `call(x, positions=p)` adds row `p[b, t]` at `x[b, t]` (int [batch, length], e.g. positions
    that skip left padding).

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

    def call(self, x: tf.Tensor, start_index: int | tf.Tensor = 0,
             positions: tf.Tensor | None = None) -> tf.Tensor:
        too_long = (f"{self.name}: positions must be < sequence_length={self.sequence_length} "
                    "(the input is longer than the position table)")
        if positions is not None:
            positions = tf.cast(positions, tf.int32)
            with tf.control_dependencies([tf.debugging.assert_less(
                    positions, self.sequence_length, message=too_long)]):
                table = tf.gather(self.embeddings, positions)
            return x + tf.cast(table, x.dtype)
        length = x.shape[1]
        if isinstance(length, int) and isinstance(start_index, int):  # static: check now
            if start_index + length > self.sequence_length:
                raise ValueError(f"{too_long}: length {length} from position {start_index}")
        else:
            length = tf.shape(x)[1]
            ok = tf.debugging.assert_less_equal(start_index + length, self.sequence_length,
                                                message=too_long)
            with tf.control_dependencies([ok]):
                length = tf.identity(length)
        table = tf.slice(self.embeddings, [start_index, 0], [length, -1])
        return x + tf.cast(table[None], x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "sequence_length": self.sequence_length,
                "initializer": self.initializer}
