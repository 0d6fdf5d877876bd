"""ResNets (He et al. 2016) as serializable functional Keras models, for any input size.

    >>> model = resnet20(num_classes=10)             # CIFAR-style, 0.27M parameters
    >>> model(tf.zeros([2, 32, 32, 3])).shape
    TensorShape([2, 10])

Layers are named for surgery and probes like tfkit's ViT: "stem", "block_0" … "block_{L-1}"
(each a `ResidualBlock`), "pool", "head". Inputs are float images in [0, 1] of any size.
"""

from __future__ import annotations

from collections.abc import Sequence

from tfkit.backend import keras, tf

__all__ = ["ResNet", "ResidualBlock", "resnet20", "resnet56", "resnet50"]


@keras.utils.register_keras_serializable(package="tfkit")
class ResidualBlock(keras.layers.Layer):
    """`relu(shortcut(x) + residual(x))` with a basic (2 x 3x3) or bottleneck (1-3-1) residual.

    The shortcut is the identity, or a strided 1x1 conv + BN when shape changes ("option B").

    Args:
        filters: output channels (bottleneck: 4 x filters).
        strides: stride of the first 3x3 conv (2 to downsample).
        bottleneck: 1x1-3x3-1x1 bottleneck instead of two 3x3 convs.
        weight_decay: L2 on conv kernels.

    Example:
        >>> ResidualBlock(8, strides=2)(tf.zeros([1, 8, 8, 4])).shape
        TensorShape([1, 4, 4, 8])
    """

    def __init__(self, filters: int, strides: int = 1, bottleneck: bool = False,
                 weight_decay: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)
        self.bottleneck = bool(bottleneck)
        self.weight_decay = float(weight_decay)

    def _conv(self, filters: int, size: int, strides: int = 1, name: str = ""
              ) -> keras.layers.Layer:
        reg = keras.regularizers.l2(self.weight_decay) if self.weight_decay else None
        return keras.layers.Conv2D(filters, size, strides, padding="same", use_bias=False,
                                   kernel_initializer="he_normal", kernel_regularizer=reg,
                                   name=name)

    def build(self, input_shape):
        out = self.filters * (4 if self.bottleneck else 1)
        if self.bottleneck:
            specs = [(self.filters, 1, 1), (self.filters, 3, self.strides), (out, 1, 1)]
        else:
            specs = [(self.filters, 3, self.strides), (out, 3, 1)]
        self.convs = [self._conv(f, k, s, f"conv_{i}") for i, (f, k, s) in enumerate(specs)]
        self.norms = [keras.layers.BatchNormalization(name=f"norm_{i}") for i in range(len(specs))]
        shape = tf.TensorShape(input_shape)
        for conv, norm in zip(self.convs, self.norms, strict=False):
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            norm.build(shape)
        self.projection = None
        if self.strides != 1 or int(input_shape[-1]) != out:
            self.projection = self._conv(out, 1, self.strides, "projection")
            self.projection.build(input_shape)
            self.projection_norm = keras.layers.BatchNormalization(name="projection_norm")
            self.projection_norm.build(self.projection.compute_output_shape(input_shape))
        super().build(input_shape)

    def shortcut(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """The skip path alone: what remains when the residual branch is removed."""
        if self.projection is None:
            return x
        return self.projection_norm(self.projection(x), training=training)

    def call(self, x, training=None):
        h = x
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=False)):
            h = norm(conv(h), training=training)
            if i < len(self.convs) - 1:
                h = tf.nn.relu(h)
        return tf.nn.relu(self.shortcut(x, training) + h)

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape)
        out = self.filters * (4 if self.bottleneck else 1)
        size = [None if d is None else -(-d // self.strides) for d in shape[1:3]]
        return tf.TensorShape([shape[0], *size, out])

    def get_config(self) -> dict:
        return {**super().get_config(), "filters": self.filters, "strides": self.strides,
                "bottleneck": self.bottleneck, "weight_decay": self.weight_decay}


@keras.utils.register_keras_serializable(package="tfkit")
class ResNet(keras.Model):
    """ResNet classifier: stem → stages of `ResidualBlock`s → global average pool → head.

    Args:
        blocks_per_stage: residual blocks in each stage, e.g. (3, 3, 3) = ResNet-20.
        widths: base filters of each stage (doubling with a stride-2 first block after stage 0).
        bottleneck: bottleneck blocks (ResNet-50) instead of basic blocks (CIFAR ResNets).
        stem: "cifar" (3x3 conv) or "imagenet" (7x7/2 conv + 3x3/2 max pool).
        num_classes: output logits.
        channels: input channels.
        weight_decay: L2 on conv kernels.

    Example:
        >>> model = ResNet((1, 1), widths=(8, 16), num_classes=3, channels=1)
        >>> model(tf.zeros([2, 12, 12, 1])).shape
        TensorShape([2, 3])
    """

    def __init__(self, blocks_per_stage: Sequence[int] = (3, 3, 3),
                 widths: Sequence[int] = (16, 32, 64), bottleneck: bool = False,
                 stem: str = "cifar", num_classes: int = 10, channels: int = 3,
                 weight_decay: float = 0.0, **kwargs):
        if len(blocks_per_stage) != len(widths):
            raise ValueError(f"blocks_per_stage {blocks_per_stage} and widths {widths} differ "
                             "in length")
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
        images = keras.Input((None, None, channels), name="images")
        x = _stem(images, widths[0], stem)
        index = 0
        for stage, (count, width) in enumerate(zip(blocks_per_stage, widths, strict=False)):
            for j in range(count):
                strides = 2 if stage > 0 and j == 0 else 1
                x = ResidualBlock(width, strides, bottleneck, weight_decay,
                                  name=f"block_{index}")(x)
                index += 1
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        logits = keras.layers.Dense(num_classes, name="head")(x)
        super().__init__(inputs=images, outputs=logits, **kwargs)
        self.blocks_per_stage = tuple(int(b) for b in blocks_per_stage)
        self.widths = tuple(int(w) for w in widths)
        self.bottleneck = bool(bottleneck)
        self.stem = stem
        self.num_classes = num_classes
        self.channels = channels
        self.weight_decay = weight_decay
        self.num_layers = index

    @property
    def blocks(self) -> list[ResidualBlock]:
        return [self.get_layer(f"block_{i}") for i in range(self.num_layers)]

    def get_config(self) -> dict:
        return {"blocks_per_stage": list(self.blocks_per_stage), "widths": list(self.widths),
                "bottleneck": self.bottleneck, "stem": self.stem,
                "num_classes": self.num_classes, "channels": self.channels,
                "weight_decay": self.weight_decay, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> ResNet:
        return cls(**config)


@keras.utils.register_keras_serializable(package="tfkit")
class _Stem(keras.layers.Layer):
    """conv-BN-ReLU (+ max pool for the ImageNet stem), one layer named "stem"."""

    def __init__(self, filters: int, kind: str = "cifar", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kind = kind

    def build(self, input_shape):
        size, strides = (7, 2) if self.kind == "imagenet" else (3, 1)
        self.conv = keras.layers.Conv2D(self.filters, size, strides, padding="same",
                                        use_bias=False, kernel_initializer="he_normal",
                                        name="conv")
        self.conv.build(input_shape)
        self.norm = keras.layers.BatchNormalization(name="norm")
        self.norm.build(self.conv.compute_output_shape(input_shape))
        super().build(input_shape)

    def call(self, x, training=None):
        x = tf.nn.relu(self.norm(self.conv(x), training=training))
        if self.kind == "imagenet":
            x = tf.nn.max_pool2d(x, 3, 2, "SAME")
        return x

    def get_config(self) -> dict:
        return {**super().get_config(), "filters": self.filters, "kind": self.kind}


def _stem(images, filters: int, kind: str):
    return _Stem(filters, kind, name="stem")(images)


def resnet20(num_classes: int = 10, channels: int = 3, **kwargs) -> ResNet:
    """CIFAR ResNet-20 (3 stages x 3 basic blocks, widths 16/32/64; 0.27M parameters)."""
    return ResNet((3, 3, 3), (16, 32, 64), num_classes=num_classes, channels=channels, **kwargs)


def resnet56(num_classes: int = 10, channels: int = 3, **kwargs) -> ResNet:
    """CIFAR ResNet-56 (3 stages x 9 basic blocks, widths 16/32/64; 0.85M parameters)."""
    return ResNet((9, 9, 9), (16, 32, 64), num_classes=num_classes, channels=channels, **kwargs)


def resnet50(num_classes: int = 1000, channels: int = 3, **kwargs) -> ResNet:
    """ImageNet ResNet-50 layout (7x7 stem, bottleneck stages 3/4/6/3, widths 64-512)."""
    return ResNet((3, 4, 6, 3), (64, 128, 256, 512), bottleneck=True, stem="imagenet",
                  num_classes=num_classes, channels=channels, **kwargs)
