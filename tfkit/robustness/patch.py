"""Patch perturbations aligned (or not) with a ViT's patch grid.

    >>> images = tf.random.uniform([2, 8, 8, 3], seed=1)
    >>> shuffled = shuffle_patches(images, patch_size=4, seed=0)
    >>> shuffled.shape, bool(tf.reduce_all(tf.sort(tf.reshape(shuffled, [-1]))
    ...                                    == tf.sort(tf.reshape(images, [-1]))))
    (TensorShape([2, 8, 8, 3]), True)

All ops take float [B, H, W, C] images whose sides are divisible by `patch_size`, are
deterministic per seed, and keep values in [0, 1].
"""

from __future__ import annotations

from tfkit.backend import tf

__all__ = ["to_patches", "from_patches", "shuffle_patches", "drop_patches", "patch_noise"]


def to_patches(x: tf.Tensor, p: int) -> tf.Tensor:
    """[B, H, W, C] -> [B, N, p, p, C] in row-major patch order."""
    b, h, w, c = tf.shape(x)[0], int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
    t = tf.reshape(x, [b, h // p, p, w // p, p, c])
    return tf.reshape(tf.transpose(t, [0, 1, 3, 2, 4, 5]), [b, (h // p) * (w // p), p, p, c])


def from_patches(patches: tf.Tensor, h: int, w: int) -> tf.Tensor:
    """Inverse of `to_patches`."""
    b, p, c = tf.shape(patches)[0], int(patches.shape[2]), int(patches.shape[4])
    t = tf.reshape(patches, [b, h // p, w // p, p, p, c])
    return tf.reshape(tf.transpose(t, [0, 1, 3, 2, 4, 5]), [b, h, w, c])


def _random_order(seed: tf.Tensor, batch: tf.Tensor, n: int) -> tf.Tensor:
    """A random permutation of range(n) per image [B, n] (argsort of stateless noise)."""
    return tf.argsort(tf.random.stateless_uniform([batch, n], seed), axis=-1)


def _seed(seed) -> tf.Tensor:
    seed = tf.convert_to_tensor(seed, tf.int64)
    return tf.stack([seed, 0]) if seed.shape.rank == 0 else seed


def _check(x: tf.Tensor, p: int) -> None:
    if int(x.shape[1]) % p or int(x.shape[2]) % p:
        raise ValueError(f"image sides {tuple(x.shape[1:3])} are not divisible by patch {p}")


def shuffle_patches(x: tf.Tensor, patch_size: int, seed: int | tf.Tensor = 0) -> tf.Tensor:
    """Randomly permutes the patches of every image (content kept, layout destroyed)."""
    _check(x, patch_size)
    patches = to_patches(x, patch_size)
    order = _random_order(_seed(seed), tf.shape(x)[0], int(patches.shape[1]))
    return from_patches(tf.gather(patches, order, batch_dims=1), int(x.shape[1]),
                        int(x.shape[2]))


def _patch_mask(x: tf.Tensor, patch_size: int, count: int, seed, offset: int) -> tf.Tensor:
    """[B, H, W, 1] float mask of `count` random grid cells, the grid shifted by `offset` px."""
    h, w = int(x.shape[1]), int(x.shape[2])
    n = (h // patch_size) * (w // patch_size)
    order = _random_order(_seed(seed), tf.shape(x)[0], n)
    chosen = tf.reduce_sum(tf.one_hot(order[:, :count], n), axis=1)  # [B, n] in {0, 1}
    cells = tf.reshape(chosen, [-1, h // patch_size, w // patch_size, 1])
    mask = tf.repeat(tf.repeat(cells, patch_size, axis=1), patch_size, axis=2)
    return tf.roll(mask, [offset, offset], axis=[1, 2]) if offset else mask


def drop_patches(x: tf.Tensor, patch_size: int, count: int, seed: int | tf.Tensor = 0,
                 value: float = 0.0) -> tf.Tensor:
    """Replaces `count` random patches per image with `value` (0 = black)."""
    _check(x, patch_size)
    mask = _patch_mask(x, patch_size, count, seed, 0)
    return x * (1 - mask) + value * mask


def patch_noise(x: tf.Tensor, patch_size: int, count: int, stddev: float, seed: int | tf.Tensor = 0,
                offset: int = 0) -> tf.Tensor:
    """Gaussian noise inside `count` random patches. `offset=0` aligns them with the ViT patch
    grid; `offset=patch_size // 2` straddles four patches (the misaligned control)."""
    _check(x, patch_size)
    mask_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(_seed(seed), 2))
    mask = _patch_mask(x, patch_size, count, mask_seed, offset)
    noise = tf.random.stateless_normal(tf.shape(x), noise_seed, stddev=stddev)
    return tf.clip_by_value(x + noise * mask, 0.0, 1.0)
