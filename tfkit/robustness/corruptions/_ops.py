"""Batched TensorFlow building blocks shared by the corruption families.

Every helper takes float32 images [batch, height, width, channels] in [0, 1] and stateless seeds
(shape [2] int32), so a corruption is a pure function of (images, severity, seed): the same seed
gives the same output in eager mode, inside `tf.function`, inside `tf.data` and on a GPU.
"""

from __future__ import annotations

import math

from tfkit.backend import tf

REFERENCE_SIZE = 224  # ImageNet-C's image side; spatial parameters are given at this size


def spatial_scale(x: tf.Tensor) -> float:
    """How much smaller than ImageNet-C's 224 px the images are (e.g. 32 / 224 for CIFAR)."""
    return min(int(x.shape[1]), int(x.shape[2])) / REFERENCE_SIZE


def split_seed(seed: tf.Tensor, n: int) -> list[tf.Tensor]:
    """`n` independent stateless seeds derived from one."""
    return list(tf.unstack(tf.random.experimental.stateless_split(seed, n)))


def gaussian_kernel_1d(sigma: float) -> tf.Tensor:
    radius = max(1, int(math.ceil(3.0 * sigma)))  # ±3 sigma holds 99.7% of the mass
    t = tf.range(-radius, radius + 1, dtype=tf.float32)
    k = tf.exp(-0.5 * tf.square(t / sigma))
    return k / tf.reduce_sum(k)


def depthwise(x: tf.Tensor, kernel_2d: tf.Tensor) -> tf.Tensor:
    """Applies one [kh, kw] kernel to every channel, padding by symmetric reflection."""
    kh, kw = int(kernel_2d.shape[0]), int(kernel_2d.shape[1])
    ph, pw = kh // 2, kw // 2
    h, w = int(x.shape[1]), int(x.shape[2])
    # SYMMETRIC padding needs pad <= size; larger kernels fall back to edge-clamped gathers.
    if ph <= h and pw <= w:
        x = tf.pad(x, [[0, 0], [ph, kh - 1 - ph], [pw, kw - 1 - pw], [0, 0]], "SYMMETRIC")
    else:
        rows = tf.clip_by_value(tf.range(-ph, h + kh - 1 - ph), 0, h - 1)
        cols = tf.clip_by_value(tf.range(-pw, w + kw - 1 - pw), 0, w - 1)
        x = tf.gather(tf.gather(x, rows, axis=1), cols, axis=2)
    c = int(x.shape[-1])
    k = tf.tile(tf.cast(kernel_2d, x.dtype)[:, :, None, None], [1, 1, c, 1])
    return tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "VALID")


def gaussian_blur(x: tf.Tensor, sigma: float) -> tf.Tensor:
    """Separable Gaussian blur (skimage.filters.gaussian); a no-op for sigma below 0.05 px."""
    if sigma < 0.05:
        return x
    k = gaussian_kernel_1d(sigma)
    return depthwise(depthwise(x, k[:, None]), k[None, :])


def bilinear_sample(x: tf.Tensor, rows: tf.Tensor, cols: tf.Tensor,
                    fill: float | None = None) -> tf.Tensor:
    """Samples x at float coordinates rows/cols [B, H', W'] with bilinear interpolation.

    Coordinates outside the image are clamped to the border (fill=None) or read as `fill`.
    """
    h, w = int(x.shape[1]), int(x.shape[2])
    r0, c0 = tf.floor(rows), tf.floor(cols)
    fr, fc = (rows - r0)[..., None], (cols - c0)[..., None]

    def at(r, c):
        ri = tf.cast(tf.clip_by_value(r, 0, h - 1), tf.int32)
        ci = tf.cast(tf.clip_by_value(c, 0, w - 1), tf.int32)
        v = tf.gather_nd(x, tf.stack([ri, ci], -1), batch_dims=1)
        if fill is None:
            return v
        inside = (r >= 0) & (r <= h - 1) & (c >= 0) & (c <= w - 1)
        return tf.where(inside[..., None], v, tf.cast(fill, x.dtype))

    top = at(r0, c0) * (1 - fc) + at(r0, c0 + 1) * fc
    bottom = at(r0 + 1, c0) * (1 - fc) + at(r0 + 1, c0 + 1) * fc
    return top * (1 - fr) + bottom * fr


def pixel_grid(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Row and column coordinates [B, H, W] of every pixel."""
    b, h, w = tf.shape(x)[0], int(x.shape[1]), int(x.shape[2])
    rows, cols = tf.meshgrid(tf.range(h, dtype=tf.float32), tf.range(w, dtype=tf.float32),
                             indexing="ij")
    return tf.tile(rows[None], [b, 1, 1]), tf.tile(cols[None], [b, 1, 1])


def shift_clamped(x: tf.Tensor, dy: tf.Tensor, dx: tf.Tensor) -> tf.Tensor:
    """Shifts each image by integer (dy[b], dx[b]) pixels, repeating the border (the reference's
    `shift`)."""
    h, w = int(x.shape[1]), int(x.shape[2])
    rows = tf.clip_by_value(tf.range(h)[None, :] - dy[:, None], 0, h - 1)
    cols = tf.clip_by_value(tf.range(w)[None, :] - dx[:, None], 0, w - 1)
    x = tf.gather(x, rows, axis=1, batch_dims=1)
    return tf.gather(x, cols, axis=2, batch_dims=1)


def motion_blur(x: tf.Tensor, radius: int, sigma: float, angles: tf.Tensor) -> tf.Tensor:
    """The reference's `_motion_blur`: a one-sided Gaussian-weighted sum of `2 * radius + 1`
    integer shifts along `angles` [B] (degrees), border repeated."""
    width = 2 * radius + 1
    k = tf.exp(-tf.square(tf.range(width, dtype=tf.float32)) / (2 * max(sigma, 1e-3) ** 2))
    k = k / tf.reduce_sum(k)
    rad = angles * (math.pi / 180.0)
    out = tf.zeros_like(x)
    for i in range(width):
        dy = -tf.cast(tf.math.ceil(i * tf.sin(rad) - 0.5), tf.int32)
        dx = -tf.cast(tf.math.ceil(i * tf.cos(rad) - 0.5), tf.int32)
        out += k[i] * shift_clamped(x, dy, dx)
    return out


def center_zoom(x: tf.Tensor, factors: list[float]) -> tf.Tensor:
    """For each zoom factor z: the central 1/z crop resized back to full size (the reference's
    `clipped_zoom`). Returns [len(factors), B, H, W, C]."""
    b, h, w = tf.shape(x)[0], int(x.shape[1]), int(x.shape[2])
    boxes = [[0.5 - 0.5 / z, 0.5 - 0.5 / z, 0.5 + 0.5 / z, 0.5 + 0.5 / z] for z in factors]
    boxes = tf.repeat(tf.constant(boxes, tf.float32), b, axis=0)  # factor-major
    index = tf.tile(tf.range(b), [len(factors)])
    out = tf.image.crop_and_resize(x, boxes, index, [h, w])
    return tf.reshape(out, [len(factors), b, h, w, int(x.shape[-1])])


def fractal_noise(seed: tf.Tensor, batch: tf.Tensor, height: int, width: int,
                  decay: float) -> tf.Tensor:
    """Fractal "plasma" noise [B, H, W, 1] in [0, 1].

    The reference builds it with the sequential diamond-square algorithm, whose displacement
    shrinks by `decay` per octave. Here every octave is an independent uniform grid of
    2^k + 1 points with amplitude decay^-k, bilinearly upsampled and summed: the same
    1/decay-per-octave spectrum, but batched and stateless.
    """
    size = 1 << max(1, math.ceil(math.log2(max(height, width))))
    octaves = int(math.log2(size)) + 1
    seeds = split_seed(seed, octaves)
    total = tf.zeros([batch, height, width, 1])
    for k in range(octaves):
        cells = (1 << k) + 1
        grid = tf.random.stateless_uniform([batch, cells, cells, 1], seeds[k], -1.0, 1.0)
        up = tf.image.resize(grid, [size, size], "bilinear")[:, :height, :width]
        total += up * decay ** (-k)
    lo = tf.reduce_min(total, axis=[1, 2, 3], keepdims=True)
    hi = tf.reduce_max(total, axis=[1, 2, 3], keepdims=True)
    return (total - lo) / tf.maximum(hi - lo, 1e-6)


def grayscale(x: tf.Tensor) -> tf.Tensor:
    """Luma [B, H, W, 1] (ITU-R 601, as cv2.COLOR_RGB2GRAY); grayscale input is returned as is."""
    if int(x.shape[-1]) == 1:
        return x
    return tf.image.rgb_to_grayscale(x)
