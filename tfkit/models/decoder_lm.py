"""A small GPT-style causal language model as a serializable functional Keras model."""

from __future__ import annotations

from tfkit.backend import keras, tf
from tfkit.layers import PositionEmbedding, TransformerBlock

__all__ = ["DecoderLM"]


def _positions(padding_mask: tf.Tensor) -> tf.Tensor:
    """Each real token's index among its row's real tokens (so left padding shifts nothing);
    a pad keeps its own index (pads are never attended; right-padded rows keep 0, 1, 2, …)."""
    counted = tf.cumsum(tf.cast(padding_mask, tf.int32), axis=1) - 1
    index = tf.broadcast_to(tf.range(tf.shape(padding_mask)[1])[None], tf.shape(counted))
    return tf.where(padding_mask, counted, index)


@keras.utils.register_keras_serializable(package="tfkit")
class DecoderLM(keras.Model):
    """Token ids [batch, length] → next-token logits [batch, length, vocabulary_size].

    Token id `pad_id` (0) is padding: padded keys are never attended and positions count
    real tokens only (a left-padded row gets the logits of the same row unpadded), so padding
    on either side gives the same logits at real tokens. Layers are named for reuse (soft
    prompts, KV-cache decoding, sparsity probes): "token_embedding", "positions",
    "position_embedding", "block_0" … "block_{L-1}", "final_norm", "lm_head".

    Args:
        vocabulary_size: tokens in the vocabulary (id 0 is padding).
        sequence_length: longest sequence (position table size).
        num_layers: Transformer blocks.
        hidden_dim: token width.
        num_heads: attention heads.
        intermediate_dim: MLP width (d_ff).
        activation: MLP activation ("relu" to study activation sparsity, "gelu" as in GPT-2).
        top_k: Top-k MLP activations per token (None = dense).
        dropout: dropout rate in the blocks.
        pad_id: the padding token id.

    Example:
        >>> lm = DecoderLM(vocabulary_size=50, sequence_length=16, num_layers=1, hidden_dim=16,
        ...                num_heads=2, intermediate_dim=32)
        >>> lm(tf.ones([2, 7], tf.int32)).shape
        TensorShape([2, 7, 50])
    """

    def __init__(self, vocabulary_size: int, sequence_length: int = 256, num_layers: int = 4,
                 hidden_dim: int = 128, num_heads: int = 4, intermediate_dim: int = 512,
                 activation: str = "gelu", top_k: int | None = None, dropout: float = 0.0,
                 pad_id: int = 0, **kwargs):
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        padding_mask = keras.layers.Lambda(lambda t: tf.not_equal(t, pad_id),
                                           name="padding_mask")(token_ids)
        x = keras.layers.Embedding(vocabulary_size, hidden_dim, name="token_embedding")(token_ids)
        positions = keras.layers.Lambda(_positions, name="positions")(padding_mask)
        x = PositionEmbedding(sequence_length, name="position_embedding")(x, positions=positions)
        for i in range(num_layers):
            x = TransformerBlock(num_heads, intermediate_dim, activation=activation, top_k=top_k,
                                 causal=True, dropout=dropout, name=f"block_{i}")(
                                     x, padding_mask=padding_mask)
        x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
        logits = keras.layers.Dense(vocabulary_size, name="lm_head")(x)
        super().__init__(inputs=token_ids, outputs=logits, **kwargs)
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.top_k = top_k
        self.dropout = dropout
        self.pad_id = pad_id

    @property
    def blocks(self) -> list[TransformerBlock]:
        return [self.get_layer(f"block_{i}") for i in range(self.num_layers)]

    def get_config(self) -> dict:
        return {"vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length, "num_layers": self.num_layers,
                "hidden_dim": self.hidden_dim, "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim, "activation": self.activation,
                "top_k": self.top_k, "dropout": self.dropout, "pad_id": self.pad_id,
                "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> DecoderLM:
        return cls(**config)
