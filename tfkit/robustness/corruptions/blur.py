"""Blur corruptions: defocus, glass, motion, zoom (ImageNet-C).

Lengths in pixels (radii, sigmas, displacements) are the reference's values at 224 px, listed per
severity 1..5, multiplied by `image_side / 224` (CIFAR-10: x0.143). The resulting CIFAR radii are
close to the ones CIFAR-10-C picked by hand (e.g. defocus radius 0.43-1.43 px here vs. 0.3-1.5).
"""

from __future__ import annotations

import math

import numpy as np

from tfkit.backend import tf
from tfkit.robustness.corruptions import _ops

# (disk radius px @224, anti-alias Gaussian sigma px @224). Reference: same values.
DEFOCUS = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))
# (Gaussian sigma px @224, max displacement px @224, iterations). Reference: same values.
GLASS = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))
# (radius px @224, sigma px @224); the angle is uniform in [-45, 45] degrees. Reference: same.
MOTION = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))
# Zoom factors averaged with the image (relative, so size-free). Reference: same np.arange's.
ZOOM = ((1.0, 1.11, 0.01), (1.0, 1.16, 0.01), (1.0, 1.21, 0.02), (1.0, 1.26, 0.02),
        (1.0, 1.31, 0.03))
SUPERSAMPLE = 8  # sub-pixel samples per axis when rasterising a (possibly sub-pixel) disk


def disk_kernel(radius: float, alias_sigma: float) -> tf.Tensor:
    """A normalised disk of `radius` px, anti-aliased by area coverage plus a Gaussian blur.

    The reference rasterises the disk on integer points and blurs it with `alias_sigma`; at
    CIFAR sizes the radius is below 2 px, so coverage is measured with sub-pixel samples instead.
    """
    r_int = int(math.ceil(radius + 3 * alias_sigma))
    n = (2 * r_int + 1) * SUPERSAMPLE
    t = (tf.range(n, dtype=tf.float32) + 0.5) / SUPERSAMPLE - (r_int + 0.5)
    yy, xx = tf.meshgrid(t, t, indexing="ij")
    inside = tf.cast(yy**2 + xx**2 <= radius**2, tf.float32)[None, :, :, None]
    kernel = tf.nn.avg_pool2d(inside, SUPERSAMPLE, SUPERSAMPLE, "VALID")  # coverage per pixel
    kernel = _ops.gaussian_blur(kernel, alias_sigma)[0, :, :, 0]
    return kernel / tf.reduce_sum(kernel)


def defocus_blur(x: tf.Tensor, severity: int, seed: tf.Tensor) -> tf.Tensor:
    radius, alias = DEFOCUS[severity - 1]
    s = _ops.spatial_scale(x)
    return _ops.depthwise(x, disk_kernel(max(radius * s, 0.5), alias * s))


def glass_blur(x: tf.Tensor, severity: int, seed: tf.Tensor) -> tf.Tensor:
    """Blur, locally scramble pixels, blur again.

    The reference swaps each pixel with a random neighbour within `max_delta`, sequentially over
    the image. Batched here: every pixel is re-read from a random offset uniform in
    [-max_delta, max_delta) (scaled, sub-pixel offsets interpolated bilinearly), `iterations`
    times; the 8-bit rounding between the two blurs is kept.
    """
    sigma, delta, iterations = GLASS[severity - 1]
    s = _ops.spatial_scale(x)
    x = tf.round(_ops.gaussian_blur(x, sigma * s) * 255.0) / 255.0
    rows, cols = _ops.pixel_grid(x)
    for seed_i in _ops.split_seed(seed, iterations):
        d = tf.random.stateless_uniform([2, *tf.unstack(tf.shape(rows))], seed_i,
                                        -delta * s, delta * s)
        x = _ops.bilinear_sample(x, rows + d[0], cols + d[1])
    return _ops.gaussian_blur(x, sigma * s)


def motion_blur(x: tf.Tensor, severity: int, seed: tf.Tensor) -> tf.Tensor:
    radius, sigma = MOTION[severity - 1]
    s = _ops.spatial_scale(x)
    angles = tf.random.stateless_uniform(tf.shape(x)[:1], seed, -45.0, 45.0)
    return _ops.motion_blur(x, max(1, round(radius * s)), sigma * s, angles)


def zoom_blur(x: tf.Tensor, severity: int, seed: tf.Tensor) -> tf.Tensor:
    start, stop, step = ZOOM[severity - 1]
    factors = [float(z) for z in np.arange(start, stop, step)]  # exactly the reference's list
    zoomed = _ops.center_zoom(x, factors)
    return (x + tf.reduce_sum(zoomed, axis=0)) / (len(factors) + 1)
