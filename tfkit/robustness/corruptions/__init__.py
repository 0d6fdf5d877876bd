"""The 15 ImageNet-C corruptions (Hendrycks & Dietterich, ICLR 2019) as batched TensorFlow ops.

    >>> from tfkit.robustness.corruptions import corrupt
    >>> images = tf.random.uniform([4, 32, 32, 3])
    >>> corrupt(images, "fog", severity=3, seed=0).shape
    TensorShape([4, 32, 32, 3])

Every corruption is a pure function of (images, severity, seed): stateless random ops only, so
it runs inside `tf.data` (`dataset.map`), under `tf.function` and on a GPU, and the same seed
gives the same output. Inputs are uint8 [0, 255] or float [0, 1] images [B, H, W, C] (C = 1 or
3) with static H, W; outputs have the input's dtype and range. Each family's module lists the
reference parameters (the `imagecorruptions` package) next to how they are scaled to the image
size: pixel lengths x `side / 224`; relative parameters unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from tfkit.backend import tf
from tfkit.errors import TfkitError
from tfkit.robustness.corruptions.blur import defocus_blur, glass_blur, motion_blur, zoom_blur
from tfkit.robustness.corruptions.digital import (
    brightness,
    contrast,
    elastic_transform,
    jpeg_compression,
    pixelate,
)
from tfkit.robustness.corruptions.noise import gaussian_noise, impulse_noise, shot_noise
from tfkit.robustness.corruptions.weather import fog, frost, snow

__all__ = ["CORRUPTIONS", "FAMILIES", "SEVERITIES", "corrupt", "corruption_fn", "seed_pair"]

CorruptionFn = Callable[[tf.Tensor, int, tf.Tensor], tf.Tensor]

# Name -> op, in ImageNet-C's order; names match `imagecorruptions.get_corruption_names()`.
CORRUPTIONS: dict[str, CorruptionFn] = {
    "gaussian_noise": gaussian_noise, "shot_noise": shot_noise, "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur, "glass_blur": glass_blur, "motion_blur": motion_blur,
    "zoom_blur": zoom_blur, "snow": snow, "frost": frost, "fog": fog,
    "brightness": brightness, "contrast": contrast, "elastic_transform": elastic_transform,
    "pixelate": pixelate, "jpeg_compression": jpeg_compression,
}
FAMILIES = {"noise": list(CORRUPTIONS)[0:3], "blur": list(CORRUPTIONS)[3:7],
            "weather": list(CORRUPTIONS)[7:10], "digital": list(CORRUPTIONS)[10:15]}
SEVERITIES = (1, 2, 3, 4, 5)


class CorruptionError(TfkitError, ValueError):
    """An unknown corruption name, a severity outside 1..5, or unsupported images."""


def corruption_fn(name: str) -> CorruptionFn:
    """The op `name(x_float01, severity, seed_pair)`; lists the valid names on a miss."""
    if name not in CORRUPTIONS:
        raise CorruptionError(f"unknown corruption {name!r}; valid: {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS[name]


def seed_pair(seed: int | tf.Tensor, *salt: int | tf.Tensor) -> tf.Tensor:
    """A stateless seed [2] from an int seed (or a [2] seed) mixed with salt such as a batch
    index, so every batch of a dataset gets different but reproducible noise."""
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank == 0:
        seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    seed = tf.cast(seed, tf.int64)
    for s in salt:
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(s, tf.int64))
    return seed


def corrupt(images: tf.Tensor, corruption: str, severity: int,
            seed: int | tf.Tensor = 0) -> tf.Tensor:
    """Applies ImageNet-C `corruption` at `severity` (1..5) to a batch of images (or one).

    Args:
        images: uint8 [B, H, W, C] in [0, 255] or float [B, H, W, C] in [0, 1]; C is 1 or 3.
            One image [H, W, C] is corrupted as a batch of one.
        corruption: one of `CORRUPTIONS`.
        severity: 1 (mild) to 5 (severe).
        seed: int or stateless seed pair; same seed, same output. One seed gives one random
            pattern (noise, fog, ...): calls on single images in `ds.map` need a seed per
            element, e.g. `ds.enumerate().map(lambda i, xy: (corrupt(xy[0], "fog", 3,
            seed_pair(0, i)), xy[1]))`, or the same pattern lands on every image.

    Returns:
        The corrupted images, same shape, dtype and range as `images`.
    """
    fn = corruption_fn(corruption)
    if severity not in SEVERITIES:
        raise CorruptionError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    images = tf.convert_to_tensor(images)
    shape = images.shape
    if shape.rank not in (3, 4) or shape[-1] not in (1, 3) or None in shape[-3:-1]:
        hint = (" (grayscale [batch, H, W]: add a channel axis, images[..., None])"
                if shape.rank == 3 else "")
        raise CorruptionError(f"images must be [batch, H, W, 1 or 3] (or one [H, W, 1 or 3] "
                              f"image) with static H, W; got {tuple(shape)}{hint}")
    if shape.rank == 3:  # one image (e.g. `ds.map` before `batch`): a batch of one
        return corrupt(images[None], corruption, severity, seed)[0]
    dtype = images.dtype
    x = tf.cast(images, tf.float32) / (255.0 if dtype == tf.uint8 else 1.0)
    out = tf.clip_by_value(fn(x, int(severity), seed_pair(seed)), 0.0, 1.0)
    if dtype == tf.uint8:
        return tf.cast(tf.round(out * 255.0), tf.uint8)
    return tf.cast(out, dtype)
