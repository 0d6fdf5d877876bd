"""The FedMD paper's ten CNN participants (2-layer and 3-layer), as one serializable model.

The paper (Li & Wang 2019, and the authors' code) gives every party its own small CNN:

    2-layer: conv n1 3x3 ("same") -> BN -> ReLU -> dropout -> avg-pool 2 stride 1 ("same")
             -> conv n2 3x3 stride 2 -> BN -> ReLU -> dropout -> flatten -> dense (no bias, L2)
    3-layer: conv n1 3x3 ("same") -> BN -> ReLU -> dropout -> avg-pool 2 stride 1 ("same")
             -> conv n2 2x2 stride 2 -> BN -> ReLU -> dropout -> avg-pool 2 stride 2
             -> conv n3 3x3 stride 2 -> BN -> ReLU -> dropout -> flatten -> dense (no bias, L2)

The dense layer outputs class scores (logits, no softmax): FedMD communicates exactly these.
"""

from __future__ import annotations

from collections.abc import Sequence

from tfkit.backend import keras

__all__ = ["FedMDCNN", "PAPER_CNNS", "paper_cnn", "paper_cnns"]

# The ten architectures of the paper: (filters per conv layer, dropout rate).
PAPER_CNNS: tuple[tuple[tuple[int, ...], float], ...] = (
    ((128, 256), 0.2), ((128, 384), 0.2), ((128, 512), 0.2), ((256, 256), 0.3),
    ((256, 512), 0.4), ((64, 128, 256), 0.2), ((64, 128, 192), 0.2), ((128, 192, 256), 0.2),
    ((128, 128, 128), 0.3), ((128, 128, 192), 0.3),
)


@keras.utils.register_keras_serializable(package="tfkit")
class FedMDCNN(keras.Model):
    """A FedMD participant CNN (2 or 3 conv layers) that outputs logits.

    Args:
        filters: filters of each conv layer; 2 entries give the 2-layer CNN, 3 the 3-layer one.
        dropout: dropout rate after every conv block.
        num_classes: number of logits (FedMD-FEMNIST: 10 digits + 6 letters = 16).
        input_shape: image shape (H, W) or (H, W, C); 2-D shapes get a channel axis.
        l2: L2 weight of the final dense layer (the paper: 1e-3).
        seed: seed of the dropout layers, so that runs with the same seed match exactly.
        bn_momentum: BatchNormalization momentum (0.99 = Keras' default, the paper's). Short
            runs need a lower value, or inference uses unconverged moving statistics.

    Example:
        >>> model = FedMDCNN((16, 32), 0.2, num_classes=16, input_shape=(28, 28))
        >>> model(np.zeros((2, 28, 28), "float32")).shape
        TensorShape([2, 16])
    """

    def __init__(self, filters: Sequence[int], dropout: float, num_classes: int,
                 input_shape: Sequence[int] = (28, 28), l2: float = 1e-3, seed: int = 0,
                 bn_momentum: float = 0.99, **kwargs):
        filters, input_shape = tuple(int(f) for f in filters), tuple(int(s) for s in input_shape)
        if len(filters) not in (2, 3):
            raise ValueError(f"filters must have 2 or 3 entries (2- or 3-layer CNN), got {filters}")
        inputs = keras.Input(input_shape)
        x = keras.layers.Reshape((*input_shape, 1))(inputs) if len(input_shape) == 2 else inputs

        def block(x, n, kernel, strides, padding, index):
            x = keras.layers.Conv2D(n, kernel, strides=strides, padding=padding)(x)
            x = keras.layers.BatchNormalization(momentum=bn_momentum)(x)
            x = keras.layers.ReLU()(x)
            return keras.layers.Dropout(dropout, seed=seed * 10 + index)(x)

        x = block(x, filters[0], 3, 1, "same", 0)
        x = keras.layers.AveragePooling2D(2, strides=1, padding="same")(x)
        if len(filters) == 2:
            x = block(x, filters[1], 3, 2, "valid", 1)
        else:
            x = block(x, filters[1], 2, 2, "valid", 1)
            x = keras.layers.AveragePooling2D(2, strides=2, padding="valid")(x)
            x = block(x, filters[2], 3, 2, "valid", 2)
        x = keras.layers.Flatten()(x)
        outputs = keras.layers.Dense(num_classes, use_bias=False,
                                     kernel_regularizer=keras.regularizers.l2(l2))(x)
        super().__init__(inputs, outputs, **kwargs)
        self.filters = filters
        self.dropout = dropout
        self.num_classes = num_classes
        self.input_shape_ = input_shape  # `input_shape` is a read-only Keras property
        self.l2 = l2
        self.seed = seed
        self.bn_momentum = bn_momentum

    def get_config(self) -> dict:
        return {"filters": self.filters, "dropout": self.dropout, "num_classes": self.num_classes,
                "input_shape": self.input_shape_, "l2": self.l2, "seed": self.seed,
                "bn_momentum": self.bn_momentum, "name": self.name}

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> FedMDCNN:
        return cls(**config)


def paper_cnn(index: int, num_classes: int = 16, input_shape: Sequence[int] = (28, 28),
              width: float = 1.0, seed: int = 0, bn_momentum: float = 0.99) -> FedMDCNN:
    """The paper's CNN number `index` (0-9); `width` scales every layer's filters (1.0 = paper).
    """
    if not 0 <= index < len(PAPER_CNNS):
        raise ValueError(f"index must be in [0, {len(PAPER_CNNS) - 1}], got {index}")
    filters, dropout = PAPER_CNNS[index]
    scaled = tuple(max(4, int(round(f * width))) for f in filters)
    kind = f"{len(filters)}L" + "_".join(map(str, scaled))
    return FedMDCNN(scaled, dropout, num_classes, input_shape, seed=seed + index,
                    bn_momentum=bn_momentum, name=f"party{index}_cnn{kind}")


def paper_cnns(count: int = 10, num_classes: int = 16, input_shape: Sequence[int] = (28, 28),
               width: float = 1.0, seed: int = 0, bn_momentum: float = 0.99) -> list[FedMDCNN]:
    """The first `count` paper CNNs (cycling through the ten when `count` > 10)."""
    return [paper_cnn(i % len(PAPER_CNNS), num_classes, input_shape, width,
                      seed + 100 * (i // 10), bn_momentum) for i in range(count)]
