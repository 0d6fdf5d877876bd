"""Small evaluators for the Top-k comparison: accuracy, ECE, label noise, two corruptions.

The corruptions are Gaussian noise and Gaussian blur at CIFAR-10-C strengths (Hendrycks &
Dietterich, 2019); the robustness package has the full suite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from tfkit.errors import TfkitError

__all__ = ["expected_calibration_error", "symmetric_label_noise", "gaussian_noise",
           "gaussian_blur", "CORRUPTIONS", "evaluate_classifier", "predict_probs", "logits_fn",
           "accuracy", "SeverityError"]

# CIFAR-10-C strengths at severities 1..5 (noise: std in [0, 1] pixels; blur: sigma in pixels)
_NOISE_STD = (0.04, 0.06, 0.08, 0.09, 0.10)
_BLUR_SIGMA = (0.4, 0.6, 0.7, 0.8, 1.0)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: |accuracy - confidence| averaged over `bins` equal-width confidence bins.

    Example:
        >>> expected_calibration_error(np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1]))
        0.35
    """
    confidence = probs.max(axis=-1)
    correct = (probs.argmax(axis=-1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(round(ece, 12))


def symmetric_label_noise(labels: np.ndarray, rate: float, num_classes: int,
                          seed: int = 0) -> np.ndarray:
    """Replaces a `rate` fraction of labels by a uniformly drawn *different* class."""
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    flip = rng.random(len(labels)) < rate
    offsets = rng.integers(1, num_classes, size=int(flip.sum()))
    noisy[flip] = (labels[flip] + offsets) % num_classes
    return noisy


class SeverityError(TfkitError, ValueError):
    """A corruption severity outside CIFAR-10-C's 1..5."""


def _strength(table: tuple[float, ...], severity: int) -> float:
    """`table[severity - 1]`, refusing severities other than 1..5 (0 would index severity 5)."""
    if severity not in range(1, len(table) + 1):
        raise SeverityError(f"severity must be 1, 2, 3, 4 or 5 (CIFAR-10-C), got {severity!r}")
    return table[int(severity) - 1]


def gaussian_noise(images: np.ndarray, severity: int, seed: int = 0) -> np.ndarray:
    """Float [0, 1] NHWC images plus N(0, σ²) noise (σ from CIFAR-10-C), clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    std = _strength(_NOISE_STD, severity)
    return np.clip(images + rng.normal(0.0, std, images.shape), 0, 1).astype(np.float32)


def gaussian_blur(images: np.ndarray, severity: int, seed: int = 0) -> np.ndarray:
    """Float [0, 1] NHWC images blurred spatially with σ from CIFAR-10-C."""
    from scipy.ndimage import gaussian_filter

    sigma = _strength(_BLUR_SIGMA, severity)
    return gaussian_filter(images, sigma=(0, sigma, sigma, 0), mode="reflect").astype(np.float32)


CORRUPTIONS: dict[str, Callable[..., np.ndarray]] = {
    "gaussian_noise": gaussian_noise, "gaussian_blur": gaussian_blur}


def predict_probs(predict_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                  batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities of a logits `predict_fn` (a Keras model works), batched."""
    out = []
    for i in range(0, len(x), batch_size):
        logits = np.asarray(predict_fn(x[i:i + batch_size]), dtype=np.float64)
        logits -= logits.max(axis=-1, keepdims=True)
        p = np.exp(logits)
        out.append(p / p.sum(axis=-1, keepdims=True))
    return np.concatenate(out)


def evaluate_classifier(predict_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                        y: np.ndarray, severities: tuple[int, ...] = (1, 3, 5),
                        seed: int = 0) -> Iterator[tuple[str, float]]:
    """Yields ("accuracy", ...), ("ece", ...) and ("<corruption>/<severity>", accuracy)."""
    probs = predict_probs(predict_fn, x)
    yield "accuracy", float((probs.argmax(-1) == y).mean())
    yield "ece", expected_calibration_error(probs, y)
    for name, corrupt in CORRUPTIONS.items():
        for s in severities:
            p = predict_probs(predict_fn, corrupt(x, s, seed=seed))
            yield f"{name}/{s}", float((p.argmax(-1) == y).mean())


def logits_fn(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A `predict_fn` for a Keras model: eager logits as numpy (no per-shape tracing of
    Keras' predict/evaluate functions)."""
    return lambda x: model(x, training=False).numpy()


def accuracy(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> float:
    """Top-1 accuracy of a Keras classifier on `x`, in eager batches of `batch_size`."""
    return float((predict_probs(logits_fn(model), x, batch_size).argmax(-1) == y).mean())
