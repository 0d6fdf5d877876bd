"""A pre-LayerNorm Transformer block (self-attention + MLP) shared by tfkit's ViT and decoder."""

from __future__ import annotations

import math

from tfkit.backend import dynamic_update_slice, keras, tf
from tfkit.layers.feed_forward import FeedForward

__all__ = ["TransformerBlock"]


@keras.utils.register_keras_serializable(package="tfkit")
class TransformerBlock(keras.layers.Layer):
    """`x + Attn(LN(x))` then `x + MLP(LN(x))`, with masks and an optional key/value cache.

    The MLP is a `tfkit.layers.FeedForward` (ReLU / GELU, optionally Top-k sparse) reachable as
    `block.feed_forward`; its input is `block.feed_forward_norm(x)`.

    Args:
        num_heads: attention heads; the hidden size must be divisible by it.
        intermediate_dim: MLP hidden width (d_ff).
        activation: MLP activation.
        top_k: keep the `top_k` largest MLP activations per token (None = dense).
        causal: mask attention to earlier positions (decoder) or not (ViT / encoder).
        dropout: dropout after attention probabilities, attention output and MLP output.
        layer_norm_epsilon: epsilon of both LayerNorms.
        kernel_initializer: initializer of every kernel.

    Call args:
        x: [batch, length, hidden].
        attention_mask: optional bool [batch, length, key_length]; True = may attend.
        padding_mask: optional bool [batch, key_length]; False keys are never attended.
        cache: optional [batch, 2, heads, max_length, head_dim] keys/values of earlier
            positions; when given, the call returns `(x, updated_cache)`.
        cache_index: position of `x[:, 0]` in the cache (scalar int).

    Example:
        >>> block = TransformerBlock(num_heads=2, intermediate_dim=32, causal=True)
        >>> block(tf.zeros([1, 5, 8])).shape
        TensorShape([1, 5, 8])
    """

    def __init__(self, num_heads: int, intermediate_dim: int, activation: str = "gelu",
                 top_k: int | None = None, causal: bool = False, dropout: float = 0.0,
                 layer_norm_epsilon: float = 1e-6, kernel_initializer: str = "glorot_uniform",
                 **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim)
        self.activation = activation
        self.top_k = None if top_k is None else int(top_k)
        self.causal = bool(causal)
        self.dropout = float(dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.kernel_initializer = kernel_initializer

    def build(self, input_shape):
        hidden_dim = int(input_shape[-1])
        if hidden_dim % self.num_heads:
            raise ValueError(f"hidden size {hidden_dim} is not divisible by "
                             f"num_heads={self.num_heads}")
        self.head_dim = hidden_dim // self.num_heads
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="attention_norm")
        self.attention_norm.build(input_shape)
        self.query_key_value = keras.layers.Dense(
            3 * hidden_dim, kernel_initializer=self.kernel_initializer, name="query_key_value")
        self.query_key_value.build(input_shape)
        self.attention_output = keras.layers.Dense(
            hidden_dim, kernel_initializer=self.kernel_initializer, name="attention_output")
        self.attention_output.build(input_shape)
        self.feed_forward_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="feed_forward_norm")
        self.feed_forward_norm.build(input_shape)
        self.feed_forward = FeedForward(
            self.intermediate_dim, activation=self.activation, top_k=self.top_k,
            dropout=self.dropout, kernel_initializer=self.kernel_initializer, name="feed_forward")
        self.feed_forward.build(input_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout)
        super().build(input_shape)

    def _heads(self, t: tf.Tensor) -> tf.Tensor:  # [B, T, H*D] -> [B, H, T, D]
        b, n = tf.shape(t)[0], tf.shape(t)[1]
        return tf.transpose(tf.reshape(t, [b, n, self.num_heads, self.head_dim]), [0, 2, 1, 3])

    def _mask(self, q_len, k_len, offset, attention_mask, padding_mask):
        mask = None
        if self.causal:
            q_pos = tf.range(q_len)[:, None] + offset
            mask = (tf.range(k_len)[None, :] <= q_pos)[None]  # [1, Tq, Tk]
        if attention_mask is not None:
            am = tf.cast(attention_mask, tf.bool)
            mask = am if mask is None else tf.logical_and(mask, am)
        if padding_mask is not None:
            pm = tf.cast(padding_mask, tf.bool)[:, None, :]
            mask = pm if mask is None else tf.logical_and(mask, pm)
        return mask

    def attend(self, x: tf.Tensor, attention_mask: tf.Tensor | None = None,
               padding_mask: tf.Tensor | None = None, cache: tf.Tensor | None = None,
               cache_index: tf.Tensor | int | None = None, training: bool | None = None
               ) -> tuple[tf.Tensor, tf.Tensor | None]:
        """The attention sub-layer alone: returns (attention output, updated cache or None)."""
        qkv = self.query_key_value(self.attention_norm(x))
        q, k, v = (self._heads(t) for t in tf.split(qkv, 3, axis=-1))
        offset = 0
        if cache is not None:
            offset = tf.cast(cache_index, tf.int32)
            # Write this call's keys/values at `offset` in place (XLA-compilable, unlike a pad
            # by a traced amount); the zero start indices must share the offset's dtype.
            zero = tf.zeros([], tf.int32)
            start = tf.stack([zero, zero, zero, offset, zero])
            cache = dynamic_update_slice(cache, tf.stack([k, v], axis=1), start)
            k, v = cache[:, 0], cache[:, 1]
        scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(self.head_dim)
        mask = self._mask(tf.shape(q)[2], tf.shape(k)[2], offset, attention_mask, padding_mask)
        if mask is not None:
            # -1e9, or the dtype's lowest finite value where -1e9 does not fit (float16, where
            # -1e9 is -inf and a row with every key masked, e.g. a left pad, softmaxes to NaN).
            masked = max(-1e9, scores.dtype.min)
            scores = tf.where(mask[:, None], scores, tf.cast(masked, scores.dtype))
        probs = self.dropout_layer(tf.nn.softmax(scores, axis=-1), training=training)
        out = tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3])
        b, n = tf.shape(out)[0], tf.shape(out)[1]
        out = tf.reshape(out, [b, n, self.num_heads * self.head_dim])
        return self.attention_output(out), cache

    def call(self, x, attention_mask=None, padding_mask=None, cache=None, cache_index=None,
             training=None):
        attn, new_cache = self.attend(x, attention_mask, padding_mask, cache, cache_index,
                                      training)
        x = x + self.dropout_layer(attn, training=training)
        mlp = self.feed_forward(self.feed_forward_norm(x), training=training)
        x = x + self.dropout_layer(mlp, training=training)
        return x if cache is None else (x, new_cache)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim, "activation": self.activation,
                "top_k": self.top_k, "causal": self.causal, "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": self.kernel_initializer}
