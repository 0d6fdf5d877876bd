"""Linear centred kernel alignment (Kornblith et al. 2019) between a model's layers.

    >>> from tfkit.models import ViT
    >>> vit = ViT(image_size=8, patch_size=4, num_layers=2, hidden_dim=16, num_heads=2,
    ...           intermediate_dim=32, num_classes=3, channels=1)
    >>> images = np.random.rand(16, 8, 8, 1).astype("float32")
    >>> names, matrix = layer_cka(vit, images, tokens="cls")
    >>> len(names) == len(matrix), bool(np.allclose(np.diag(matrix), 1.0, atol=1e-4))
    (True, True)

`tokens="all"` compares whole representations (every token / every spatial position,
flattened); `tokens="cls"` compares the ViT's [CLS] token only (for a ResNet: the globally
average-pooled features, its closest analogue).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from tfkit.backend import keras, tf
from tfkit.robustness.model_perturbations import block_names, chain_layers, layer_outputs

__all__ = ["linear_cka", "gram", "cka_matrix", "representation_layers", "layer_cka"]


def gram(x: np.ndarray) -> np.ndarray:
    """Centred Gram matrix H (X Xᵀ) H of examples x features (any trailing shape)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    x = x - x.mean(axis=0, keepdims=True)  # centring features = centring the Gram matrix
    return x @ x.T


def _cka_from_grams(k: np.ndarray, lg: np.ndarray) -> float:
    return float(np.sum(k * lg) / (np.linalg.norm(k) * np.linalg.norm(lg) + 1e-12))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two representations of the same examples: 1 = identical up to rotation and
    scale, 0 = unrelated."""
    return _cka_from_grams(gram(x), gram(y))


def cka_matrix(representations: list[np.ndarray]) -> np.ndarray:
    """Square matrix of linear CKA between every pair of representations."""
    grams = [gram(r) for r in representations]
    n = len(grams)
    out = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = _cka_from_grams(grams[i], grams[j])
    return out


def representation_layers(model: keras.Model) -> list[str]:
    """The embedding ("position_embedding" for ViT, "stem" for ResNet) then every block."""
    names = {la.name for la in chain_layers(model)}
    first = [n for n in ("position_embedding", "stem") if n in names]
    return first[:1] + block_names(model)


def layer_cka(model: keras.Model, images: np.ndarray, tokens: Literal["all", "cls"] = "all",
              batch_size: int = 128) -> tuple[list[str], np.ndarray]:
    """(layer names, CKA matrix) of `representation_layers(model)` on `images`."""
    names = representation_layers(model)
    fn = layer_outputs(model, names)
    reps: list[list[np.ndarray]] = [[] for _ in names]
    for start in range(0, len(images), batch_size):
        outs = fn(tf.convert_to_tensor(images[start:start + batch_size], tf.float32))
        for i, o in enumerate(outs):
            if tokens == "cls":
                o = o[:, 0] if o.shape.rank == 3 else tf.reduce_mean(o, axis=[1, 2])
            reps[i].append(o.numpy().reshape(len(o), -1))
    return names, cka_matrix([np.concatenate(r) for r in reps])
