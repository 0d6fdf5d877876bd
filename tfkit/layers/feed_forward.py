"""The Transformer MLP block `f(x) = V · act(Kᵀx)`, optionally Top-k sparse."""

from __future__ import annotations

from tfkit.backend import keras, tf
from tfkit.layers.top_k import TopKActivation, whole_k

__all__ = ["FeedForward"]


@keras.utils.register_keras_serializable(package="tfkit")
class FeedForward(keras.layers.Layer):
    """Two dense layers with an activation between them, optionally Top-k thresholded.

    `intermediate(x)` returns the hidden activation `act(Kᵀx)` (after Top-k), the quantity
    whose sparsity the Lazy Neuron paper measures.

    Args:
        intermediate_dim: width of the hidden layer (d_ff).
        activation: activation of the hidden layer ("relu" as in T5/ViT-ReLU, "gelu", ...).
        top_k: keep only the `top_k` largest hidden activations per token (None = dense).
        dropout: dropout rate after the activation.
        kernel_initializer: initializer of both kernels.

    Example:
        >>> ff = FeedForward(intermediate_dim=32, top_k=4)
        >>> ff(tf.zeros([2, 5, 8])).shape
        TensorShape([2, 5, 8])
    """

    def __init__(self, intermediate_dim: int, activation: str = "relu", top_k: int | None = None,
                 dropout: float = 0.0, kernel_initializer: str = "glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim = int(intermediate_dim)
        self.activation = activation
        self.top_k = None if top_k is None else whole_k(top_k, "FeedForward", "top_k")  # 2.5: error
        self.dropout = float(dropout)
        self.kernel_initializer = kernel_initializer
        self.supports_masking = True

    def build(self, input_shape):
        hidden_dim = int(input_shape[-1])
        dtype = self.dtype_policy  # sublayers compute in the block's dtype (bf16, mixed, ...)
        self.intermediate_dense = keras.layers.Dense(
            self.intermediate_dim, kernel_initializer=self.kernel_initializer,
            name="intermediate_dense", dtype=dtype)
        self.intermediate_dense.build(input_shape)
        self.activation_fn = keras.activations.get(self.activation)
        self.top_k_layer = (None if self.top_k is None
                            else TopKActivation(self.top_k, name="top_k", dtype=dtype))
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=dtype)
        self.output_dense = keras.layers.Dense(
            hidden_dim, kernel_initializer=self.kernel_initializer, name="output_dense",
            dtype=dtype)
        hidden_shape = [*input_shape[:-1], self.intermediate_dim]
        self.output_dense.build(hidden_shape)
        # built here too (they have no weights): a subclass that skips them in `call`
        # (GatheredFeedForward) then saves and converts without "not built" warnings
        for layer in (self.top_k_layer, self.dropout_layer):
            if layer is not None:
                layer.build(hidden_shape)
        super().build(input_shape)

    def intermediate(self, x: tf.Tensor) -> tf.Tensor:
        """The hidden activation `act(Kᵀx)` (Top-k applied), shape [..., intermediate_dim]."""
        h = self.activation_fn(self.intermediate_dense(x))
        return h if self.top_k_layer is None else self.top_k_layer(h)

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return self.output_dense(self.dropout_layer(self.intermediate(x), training=training))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "intermediate_dim": self.intermediate_dim,
                "activation": self.activation, "top_k": self.top_k, "dropout": self.dropout,
                "kernel_initializer": self.kernel_initializer}
