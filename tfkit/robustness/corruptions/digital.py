"""Digital corruptions: brightness, contrast, elastic, pixelate, JPEG (ImageNet-C).

All parameters here are relative (to the pixel range or the image side) in the reference already,
so they are used unchanged at any image size.
"""

from __future__ import annotations

from tfkit.backend import tf
from tfkit.robustness.corruptions import _ops

# Added to HSV value (to gray pixels for 1-channel images). Reference: same values.
BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)
# Contrast factor around the per-image channel mean. Reference: same values.
CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)
# Displacement gain alpha; the raw field is uniform in ±0.005 * side, smoothed with a Gaussian of
# sigma 0.01 * side (both relative in the reference). Reference: same values.
ELASTIC_ALPHA = (250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12)
# Box-downsampling factor before nearest-neighbour upsampling. Reference: same values.
PIXELATE = (0.6, 0.5, 0.4, 0.3, 0.25)
# JPEG quality. Reference: same values.
JPEG_QUALITY = (25, 18, 15, 10, 7)


def brightness(x: tf.Tensor, severity: int, seed: tf.Tensor) -> tf.Tensor:
    c = BRIGHTNESS[severity - 1]
    if int(x.shape[-1]) != 3:
        return x + c
    hsv = tf.image.rgb_to_hsv(tf.clip_by_value(x, 0.0, 1.0))
    h, s, v = tf.unstack(hsv, axis=-1)
    return tf.image.hsv_to_rgb(tf.stack([h, s, tf.clip_by_value(v + c, 0.0, 1.0)], -1))


def contrast(x: tf.Tensor, severity: int, seed: tf.Tensor) -> tf.Tensor:
    c = CONTRAST[severity - 1]
    means = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    return (x - means) * c + means


def elastic_transform(x: tf.Tensor, severity: int, seed: tf.Tensor) -> tf.Tensor:
    alpha = ELASTIC_ALPHA[severity - 1]
    h, _w = int(x.shape[1]), int(x.shape[2])
    max_d, sigma = h * 0.005, h * 0.01  # the reference uses shape[0] for both axes' range
    field = tf.random.stateless_uniform(tf.concat([tf.shape(x)[:3], [2]], 0), seed, -max_d, max_d)
    field = _ops.gaussian_blur(field, sigma) * alpha
    rows, cols = _ops.pixel_grid(x)
    return _ops.bilinear_sample(x, rows + field[..., 1], cols + field[..., 0])


def pixelate(x: tf.Tensor, severity: int, seed: tf.Tensor) -> tf.Tensor:
    c = PIXELATE[severity - 1]
    h, w = int(x.shape[1]), int(x.shape[2])
    small = tf.image.resize(x, [int(h * c), int(w * c)], "area")
    return tf.image.resize(small, [h, w], "nearest")


def jpeg_compression(x: tf.Tensor, severity: int, seed: tf.Tensor) -> tf.Tensor:
    quality = JPEG_QUALITY[severity - 1]
    x = tf.clip_by_value(x, 0.0, 1.0)
    return tf.map_fn(lambda im: tf.image.adjust_jpeg_quality(im, quality), x)
