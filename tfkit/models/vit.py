"""Vision Transformer (Dosovitskiy et al.) as a serializable functional Keras model."""

from __future__ import annotations

from tfkit.backend import keras
from tfkit.layers import ClassToken, PositionEmbedding, TransformerBlock

__all__ = ["ViT"]


@keras.utils.register_keras_serializable(package="tfkit")
class ViT(keras.Model):
    """ViT classifier: patchify (strided conv) → [CLS] + positions → blocks → LN → head.

    Inputs are float images in [0, 1], shape [batch, image_size, image_size, channels].
    Layers are named for surgery and probes: "patch_embedding", "class_token",
    "position_embedding", "block_0" … "block_{L-1}", "final_norm", "head" (and "resize" first
    when `resize_inputs`).

    Args:
        image_size: input height and width (square images).
        patch_size: patch side; `image_size` must be divisible by it.
        num_layers: Transformer blocks.
        hidden_dim: token width.
        num_heads: attention heads.
        intermediate_dim: MLP width (d_ff).
        num_classes: output logits.
        channels: input channels.
        activation: MLP activation ("relu" for the Lazy Neuron experiments, "gelu" as in ViT).
        top_k: Top-k MLP activations per token (None = dense).
        dropout: dropout rate in the blocks.
        resize_inputs: accept images of any size and resize them (bilinear) to `image_size`.

    Example:
        >>> model = ViT(image_size=8, patch_size=4, num_layers=1, hidden_dim=16, num_heads=2,
        ...             intermediate_dim=32, num_classes=10, channels=1)
        >>> model(tf.zeros([2, 8, 8, 1])).shape
        TensorShape([2, 10])
    """

    def __init__(self, image_size: int = 32, patch_size: int = 4, num_layers: int = 6,
                 hidden_dim: int = 128, num_heads: int = 4, intermediate_dim: int = 512,
                 num_classes: int = 10, channels: int = 3, activation: str = "gelu",
                 top_k: int | None = None, dropout: float = 0.0, resize_inputs: bool = False,
                 **kwargs):
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} is not divisible by "
                             f"patch_size={patch_size}")
        num_patches = (image_size // patch_size) ** 2
        side = None if resize_inputs else image_size
        images = keras.Input((side, side, channels), name="images")
        x = images
        if resize_inputs:
            x = keras.layers.Resizing(image_size, image_size, name="resize")(x)
        x = keras.layers.Conv2D(hidden_dim, patch_size, strides=patch_size,
                                name="patch_embedding")(x)
        x = keras.layers.Reshape((num_patches, hidden_dim), name="patches")(x)
        x = ClassToken(name="class_token")(x)
        x = PositionEmbedding(num_patches + 1, name="position_embedding")(x)
        for i in range(num_layers):
            x = TransformerBlock(num_heads, intermediate_dim, activation=activation,
                                 top_k=top_k, dropout=dropout, name=f"block_{i}")(x)
        x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
        cls = keras.layers.Lambda(lambda t: t[:, 0], name="cls")(x)
        logits = keras.layers.Dense(num_classes, name="head")(cls)
        super().__init__(inputs=images, outputs=logits, **kwargs)
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.num_classes = num_classes
        self.channels = channels
        self.activation = activation
        self.top_k = top_k
        self.dropout = dropout
        self.resize_inputs = resize_inputs

    @property
    def blocks(self) -> list[TransformerBlock]:
        return [self.get_layer(f"block_{i}") for i in range(self.num_layers)]

    def get_config(self) -> dict:
        return {"image_size": self.image_size, "patch_size": self.patch_size,
                "num_layers": self.num_layers, "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads, "intermediate_dim": self.intermediate_dim,
                "num_classes": self.num_classes, "channels": self.channels,
                "activation": self.activation, "top_k": self.top_k, "dropout": self.dropout,
                "resize_inputs": self.resize_inputs, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> ViT:
        return cls(**config)
