"""Dropout masks from a few random bits per unit: the FedMD digest's cheaper draws.

Keras' `Dropout` draws one float32 uniform per unit. On a CPU TensorFlow's Philox generator
costs ~5 ns per 32-bit number on one thread, and in the FedMD digest of the paper CNNs these
draws (and the select that applies them) took 35-40 % of the step (docs/RESULTS.md, FedMD,
stop 19). `bit_dropout` cuts every 32-bit number into 32 / `bits` pieces and drops a unit when
its piece is below `round(rate * 2**bits)`: 4x (8 bits) or 2x (16 bits) fewer numbers, and a
multiply instead of a select. The drop probability becomes that rounded value over `2**bits`
(rate 0.2: 0.19922 with 8 bits, 0.20000 with 16) and the kept units are scaled by the exact
inverse of the keep probability, so the layer's output stays unbiased.

`bit_dropout_calls(dropout_layers(model, bits), generators, bits)` makes a model's plain
`keras.layers.Dropout` layers draw this way while a training step is traced (the model itself
is unchanged: saved, exported and evaluated with Keras' own layer).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from tfkit.backend import keras, tf

__all__ = ["BITS", "bit_dropout", "bit_dropout_calls", "dropout_layers", "effective_rate"]

BITS = (8, 16)  # pieces of a 32-bit random number: 4 or 2 units per number


def _check_bits(bits: int) -> None:
    if bits not in BITS:
        raise ValueError(f"bits must be one of {BITS}, got {bits!r}")


def effective_rate(rate: float, bits: int) -> float:
    """The drop probability `bit_dropout` gives for `rate`: rounded to a multiple of 2**-bits."""
    _check_bits(bits)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got {rate!r}")
    return round(rate * 2 ** bits) / 2 ** bits


def bit_dropout(x: tf.Tensor, rate: float, generator: tf.random.Generator,
                bits: int = 8) -> tf.Tensor:
    """Drops units of `x` with probability `effective_rate(rate, bits)`, scaling the rest.

    Args:
        x: a float tensor; its last axis must be a multiple of 32 / `bits` (4 for 8 bits).
        rate: the drop probability asked for.
        generator: the `tf.random.Generator` the bits come from (its state advances).
        bits: random bits per unit, 8 or 16.

    Example:
        >>> gen = tf.random.Generator.from_seed(0)
        >>> y = bit_dropout(tf.ones([2, 1000, 8]), 0.25, gen)
        >>> sorted(set(np.round(y.numpy().ravel(), 4))), abs(float(tf.reduce_mean(y)) - 1) < 0.05
        ([0.0, 1.3333], True)
    """
    threshold = round(effective_rate(rate, bits) * 2 ** bits)
    if threshold == 0:
        return x
    per_word = 32 // bits
    shape = tf.shape(x)
    channels = x.shape[-1]
    if channels is None or channels % per_word:
        raise ValueError(f"bit_dropout with {bits} bits needs a last axis that is a multiple "
                         f"of {per_word}, got shape {x.shape}")
    words = generator.uniform_full_int(tf.concat([shape[:-1], [channels // per_word]], 0),
                                       dtype=tf.uint32)
    pieces = tf.reshape(tf.bitcast(words, tf.uint8 if bits == 8 else tf.uint16), shape)
    keep = tf.cast(pieces >= tf.constant(threshold, pieces.dtype), x.dtype)
    return x * keep * tf.constant(2 ** bits / (2 ** bits - threshold), x.dtype)


def dropout_layers(model: keras.Model, bits: int) -> list[keras.layers.Dropout]:
    """The layers of `model` that `bit_dropout_calls` redirects: plain `Dropout` (not its
    subclasses such as `SpatialDropout2D`, nor ones with a `noise_shape`), with a nonzero rate
    and a last axis `bit_dropout` can cut into pieces."""
    _check_bits(bits)
    found = []
    for layer in model.submodules:
        if type(layer) is not keras.layers.Dropout or layer.noise_shape is not None:
            continue
        try:
            channels = layer.input_shape[-1]
        except (AttributeError, RuntimeError):  # not called yet, or on several shapes
            channels = None
        if layer.rate > 0 and channels and channels % (32 // bits) == 0:
            found.append(layer)
    return found


@contextlib.contextmanager
def bit_dropout_calls(layers: Sequence[keras.layers.Dropout],
                      generators: Sequence[tf.random.Generator], bits: int) -> Iterator[None]:
    """While open, calling each of `layers` in training mode applies `bit_dropout` with its own
    generator (inference mode: the input unchanged). Meant around the tracing of a step."""
    _check_bits(bits)
    if len(layers) != len(generators):
        raise ValueError(f"{len(layers)} dropout layers but {len(generators)} generators")

    def bits_call(layer, generator):
        def call(inputs, training=None):
            if isinstance(training, bool) or training is None:
                return bit_dropout(inputs, layer.rate, generator, bits) if training else \
                    tf.identity(inputs)
            return tf.cond(tf.cast(training, tf.bool),
                           lambda: bit_dropout(inputs, layer.rate, generator, bits),
                           lambda: tf.identity(inputs))
        return call

    for layer, generator in zip(layers, generators, strict=True):
        layer.call = bits_call(layer, generator)
    try:
        yield
    finally:
        for layer in layers:
            del layer.call
