"""Weather corruptions: snow, frost, fog (ImageNet-C).

Pixel lengths are the reference's values at 224 px scaled by `image_side / 224`; blend weights,
thresholds and zoom factors are relative and kept as in the reference.
"""

from __future__ import annotations

from tfkit.backend import tf
from tfkit.robustness.corruptions import _ops

# (flake mean, flake std, zoom, threshold, motion radius px @224, motion sigma px @224,
#  image blend). Reference: same values.
SNOW = ((0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7), (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55))
# (image weight, frost weight). Reference: same values.
FROST = ((1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))
# Per-channel RGB mean and std of the five frost photos the reference samples from (measured on
# imagecorruptions/frost/frost{1..5}); the procedural texture is matched to one of them.
FROST_STATS = (((0.305, 0.585, 0.650), 0.077), ((0.787, 0.805, 0.841), 0.087),
               ((0.787, 0.805, 0.841), 0.087), ((0.540, 0.599, 0.648), 0.114),
               ((0.441, 0.484, 0.528), 0.169))
FROST_DECAY = 1.25  # per-octave amplitude decay of the frost texture: rough, crystal-like
# (fog strength, fractal decay). Reference: same values; the fractal is relative to the size.
FOG = ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))


def snow(x: tf.Tensor, severity: int, seed: tf.Tensor) -> tf.Tensor:
    loc, scale, zoom, threshold, radius, sigma, blend = SNOW[severity - 1]
    s = _ops.spatial_scale(x)
    flakes_seed, angle_seed = _ops.split_seed(seed, 2)
    shape = tf.concat([tf.shape(x)[:3], [1]], 0)
    layer = tf.random.stateless_normal(shape, flakes_seed, loc, scale)
    layer = _ops.center_zoom(layer, [zoom])[0]
    layer = tf.clip_by_value(tf.where(layer < threshold, 0.0, layer), 0.0, 1.0)
    angles = tf.random.stateless_uniform(shape[:1], angle_seed, -135.0, -45.0)
    layer = _ops.motion_blur(layer, max(1, round(radius * s)), sigma * s, angles)
    layer = tf.round(layer * 255.0) / 255.0
    x = blend * x + (1 - blend) * tf.maximum(x, _ops.grayscale(x) * 1.5 + 0.5)
    return x + layer + tf.image.rot90(layer, 2)


def frost_texture(seed: tf.Tensor, batch: tf.Tensor, height: int, width: int,
                  channels: int) -> tf.Tensor:
    """A procedural stand-in for the reference's frost photos, [B, H, W, C] around [0, 1].

    Rough fractal noise (decay 1.25: strong fine detail like ice crystals), standardised per
    image, then given the per-channel mean and the std of a randomly chosen frost photo. The
    reference crops a 1.1x-rescaled photo, so its texture does not shrink with the image; here it
    is drawn at the image's own size, as the photos look at 224 px.
    """
    noise_seed, pick_seed = _ops.split_seed(seed, 2)
    t = _ops.fractal_noise(noise_seed, batch, height, width, FROST_DECAY)
    mean, var = tf.nn.moments(t, axes=[1, 2, 3], keepdims=True)
    t = (t - mean) / tf.sqrt(var + 1e-6)
    means = tf.constant([m for m, _ in FROST_STATS], tf.float32)
    stds = tf.constant([s for _, s in FROST_STATS], tf.float32)
    pick = tf.random.stateless_uniform([batch], pick_seed, 0, len(FROST_STATS), tf.int32)
    mu, sd = tf.gather(means, pick), tf.gather(stds, pick)
    if channels == 1:  # the reference converts the photo to gray for gray images
        mu = tf.reduce_sum(mu * [0.2989, 0.5870, 0.1140], axis=-1, keepdims=True)
    return mu[:, None, None, :] + sd[:, None, None, None] * t


def frost(x: tf.Tensor, severity: int, seed: tf.Tensor) -> tf.Tensor:
    w_image, w_frost = FROST[severity - 1]
    tex = frost_texture(seed, tf.shape(x)[0], int(x.shape[1]), int(x.shape[2]), int(x.shape[3]))
    return w_image * x + w_frost * tex


def fog(x: tf.Tensor, severity: int, seed: tf.Tensor) -> tf.Tensor:
    strength, decay = FOG[severity - 1]
    max_val = tf.reduce_max(x, axis=[1, 2, 3], keepdims=True)
    haze = _ops.fractal_noise(seed, tf.shape(x)[0], int(x.shape[1]), int(x.shape[2]), decay)
    x = x + strength * haze
    return x * max_val / (max_val + strength)
