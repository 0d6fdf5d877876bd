"""What a user's Keras model reads and outputs: the conventions that the robustness
evaluators, the exporters and FedMD's parties share.

tfkit's image models read float32 [0, 1] NHWC images. A user's model may instead scale 0..255
pixels itself: its Input is uint8, or its first layer (after any augmentation or resizing
layers, in a nested preprocessing model too) is a `keras.layers.Rescaling` that maps pixels
down (|scale| <= 1/100: 1/255, or 1/127.5 with offset -1). A first `Rescaling` with a larger
scale (e.g. `Rescaling(2, offset=-1)`: [0, 1] -> [-1, 1]) reads [0, 1] images.

    >>> from tfkit.backend import keras
    >>> pixels = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Rescaling(1 / 255)])
    >>> unit = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Rescaling(2, offset=-1)])
    >>> takes_pixels(pixels), takes_pixels(unit)
    (True, False)

A model outputs class scores (logits) unless it `ends_in_softmax`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfkit.backend import keras, tf

__all__ = ["MAX_PIXEL_SCALE", "ends_in_softmax", "model_inputs", "takes_pixels",
           "to_model_pixels", "to_uint8_pixels", "uint8_input"]

MAX_PIXEL_SCALE = 1 / 100  # a first Rescaling this small (or smaller) reads 0..255 pixels


def uint8_input(model: Any) -> bool:
    """Whether `model` has one Input, of dtype uint8."""
    inputs = getattr(model, "inputs", None) or []
    return len(inputs) == 1 and inputs[0].dtype == tf.uint8


# Layers that move, crop, resize or jitter pixels but keep their scale: a `Rescaling` after
# them (augmentation before scaling, as in Keras' image tutorials) still reads 0..255 pixels.
_SCALE_KEEPING = tuple(getattr(keras.layers, name) for name in (
    "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomCrop",
    "RandomHeight", "RandomWidth", "RandomContrast", "RandomBrightness", "Resizing",
    "CenterCrop"))


def _leading_rescaling(model: Any) -> Any:
    """The model's first `Rescaling`, if only scale-keeping layers come before it (looking into
    nested models, e.g. a preprocessing `Sequential`); None when it meets another layer first.
    Returns `...` when the whole model keeps the scale (the caller looks further)."""
    for layer in model.layers:
        if isinstance(layer, (keras.layers.InputLayer, *_SCALE_KEEPING)):
            continue
        if isinstance(layer, keras.layers.Rescaling):
            return layer
        if isinstance(layer, keras.Model):
            found = _leading_rescaling(layer)
            if found is ...:
                continue
            return found
        return None
    return ...


def takes_pixels(model: Any) -> bool:
    """Whether `model` is a Keras model that scales 0..255 pixels itself: its Input is uint8,
    or its first layer after the Input is a `Rescaling` with |scale| <= `MAX_PIXEL_SCALE` (only
    augmentation / resizing layers before it; in a nested preprocessing model too)."""
    if not isinstance(model, keras.Model):
        return False
    if uint8_input(model):
        return True
    rescaling = _leading_rescaling(model)
    if not isinstance(rescaling, keras.layers.Rescaling):
        return False
    return float(np.max(np.abs(np.asarray(rescaling.scale, np.float64)))) <= MAX_PIXEL_SCALE


def to_uint8_pixels(x: tf.Tensor) -> tf.Tensor:
    """Float [0, 1] images as uint8 0..255 pixels (rounded, saturated)."""
    return tf.saturate_cast(tf.round(x * 255.0), tf.uint8)


def to_model_pixels(model: Any, x: tf.Tensor) -> tf.Tensor:
    """Float [0, 1] images as the 0..255 pixels a `takes_pixels` model reads (uint8 for a uint8
    Input, else float)."""
    return to_uint8_pixels(x) if uint8_input(model) else x * 255.0


def model_inputs(model: Any, pixels: tf.Tensor) -> tf.Tensor:
    """uint8 0..255 `pixels` [batch, H, W, C] as `model` reads them: float32 [0, 1] (tfkit's
    models), or the pixels themselves (cast to the Input's dtype) for a model that
    `takes_pixels`; without the channel axis for a model whose input has none."""
    pixels = tf.convert_to_tensor(pixels)
    if len(model.inputs[0].shape) == 3:  # [batch, H, W]: a grayscale model without channels
        pixels = pixels[..., 0]
    if takes_pixels(model):
        return tf.cast(pixels, model.inputs[0].dtype)
    return tf.cast(pixels, tf.float32) / 255.0


def ends_in_softmax(model: Any) -> bool:
    """Whether `model`'s last layer is a softmax: a `Softmax` layer, a layer whose activation is
    softmax, or a Lambda / TF-op layer of `tf.nn.softmax` (`keras.Model(x, tf.nn.softmax(h))`);
    a last layer that is itself a model is looked into."""
    layers = getattr(model, "layers", None)
    last = layers[-1] if layers else None
    if isinstance(last, keras.Model):
        return ends_in_softmax(last)
    # keras.activations.softmax, tf.nn.softmax (softmax_v2) and "softmax" all match by name
    return isinstance(last, keras.layers.Softmax) or any(
        getattr(getattr(last, attr, None), "__name__", "").startswith("softmax")
        for attr in ("activation", "function"))
