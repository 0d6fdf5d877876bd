"""Noise corruptions: gaussian, shot, impulse (ImageNet-C, Hendrycks & Dietterich 2019).

Noise acts per pixel, so no parameter depends on the image size; the values are the reference's
(`imagecorruptions.corruptions`), listed per severity 1..5.
"""

from __future__ import annotations

from tfkit.backend import tf

# Standard deviation of additive Gaussian noise on [0, 1] pixels. Reference: same values.
GAUSSIAN_SIGMA = (0.08, 0.12, 0.18, 0.26, 0.38)
# Photon count scale: pixel ~ Poisson(x * c) / c, so fewer photons = more noise. Reference: same.
SHOT_PHOTONS = (60.0, 25.0, 12.0, 5.0, 3.0)
# Fraction of pixel values (per channel) replaced by salt or pepper, half each. Reference: same
# (skimage.util.random_noise(mode="s&p", amount=c)).
IMPULSE_AMOUNT = (0.03, 0.06, 0.09, 0.17, 0.27)


def gaussian_noise(x: tf.Tensor, severity: int, seed: tf.Tensor) -> tf.Tensor:
    sigma = GAUSSIAN_SIGMA[severity - 1]
    return x + tf.random.stateless_normal(tf.shape(x), seed, stddev=sigma)


def shot_noise(x: tf.Tensor, severity: int, seed: tf.Tensor) -> tf.Tensor:
    c = SHOT_PHOTONS[severity - 1]
    return tf.random.stateless_poisson(tf.shape(x), seed, x * c, dtype=tf.float32) / c


def impulse_noise(x: tf.Tensor, severity: int, seed: tf.Tensor) -> tf.Tensor:
    amount = IMPULSE_AMOUNT[severity - 1]
    u = tf.random.stateless_uniform(tf.shape(x), seed)
    x = tf.where(u < amount / 2, 0.0, x)  # pepper
    return tf.where((u >= amount / 2) & (u < amount), 1.0, x)  # salt
