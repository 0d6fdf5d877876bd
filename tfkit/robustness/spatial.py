"""Spatial transforms and the worst-of-grid evaluation (Engstrom et al. 2019).

An example counts as correct only if the model classifies it correctly under every rotation
and translation of the grid, which is the attack the paper uses for ViT vs ResNet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tfkit.backend import tf
from tfkit.robustness.corruptions import _ops

__all__ = ["rotate", "translate", "grid"]


def rotate(images: tf.Tensor, degrees: float) -> tf.Tensor:
    """Rotates float images counter-clockwise about their centre; corners are filled with 0."""
    h, w = int(images.shape[1]), int(images.shape[2])
    rows, cols = _ops.pixel_grid(images)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    a = math.radians(degrees)
    src_r = cy + (rows - cy) * math.cos(a) + (cols - cx) * math.sin(a)
    src_c = cx - (rows - cy) * math.sin(a) + (cols - cx) * math.cos(a)
    return _ops.bilinear_sample(images, src_r, src_c, fill=0.0)


def translate(images: tf.Tensor, dy: int, dx: int) -> tf.Tensor:
    """Shifts images by whole pixels (down by dy, right by dx), filling with 0."""
    h, w = int(images.shape[1]), int(images.shape[2])
    padded = tf.pad(images, [[0, 0], [abs(dy), abs(dy)], [abs(dx), abs(dx)], [0, 0]])
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[:, top:top + h, left:left + w]


def grid(rotations: Sequence[float] = (-30, -15, 0, 15, 30),
         translations: Sequence[int] = (-3, 0, 3)) -> list[tuple[float, int, int]]:
    """Every (degrees, dy, dx) combination; the defaults are a coarse version of Engstrom et al.'s
    ±30° x ±3 px (10% of 32 px) grid."""
    return [(r, dy, dx) for r in rotations for dy in translations for dx in translations]


def transform(images: tf.Tensor, degrees: float, dy: int, dx: int) -> tf.Tensor:
    """Rotation then translation."""
    out = rotate(images, degrees) if degrees else images
    return translate(out, dy, dx) if (dy or dx) else out
