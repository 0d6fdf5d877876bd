"""Robustness metrics: accuracy, expected calibration error, (relative) mean corruption error.

mCE follows Hendrycks & Dietterich (2019): for each corruption c, the model's top-1 errors summed
over severities are divided by a baseline's (AlexNet in the paper; the ResNet trained in the same
run here), then averaged over corruptions. Relative mCE uses the drop from clean error instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["accuracy", "expected_calibration_error", "mean_corruption_accuracy",
           "corruption_errors", "mce", "relative_mce"]

ECE_BINS = 15  # equal-width confidence bins, as in Guo et al. (2017)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of [N, classes] logits (or probabilities) against [N] labels."""
    return float(np.mean(np.argmax(logits, -1) == np.asarray(labels).reshape(-1)))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def expected_calibration_error(logits: np.ndarray, labels: np.ndarray,
                               bins: int = ECE_BINS) -> float:
    """Σ_b (|b| / N) · |accuracy(b) − mean confidence(b)| over equal-width confidence bins."""
    probs = _softmax(logits)
    confidence, predicted = probs.max(-1), probs.argmax(-1)
    correct = predicted == np.asarray(labels).reshape(-1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - confidence[sel].mean())
    return float(ece)


def mean_corruption_accuracy(accuracies: Mapping[str, Sequence[float]]) -> float:
    """Mean accuracy over every corruption and severity."""
    return float(np.mean([a for accs in accuracies.values() for a in accs]))


def corruption_errors(accuracies: Mapping[str, Sequence[float]],
                      baseline: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """CE_c = Σ_s err(model, c, s) / Σ_s err(baseline, c, s), per corruption c."""
    out = {}
    for c, accs in accuracies.items():
        base = np.sum(1.0 - np.asarray(baseline[c]))
        out[c] = float(np.sum(1.0 - np.asarray(accs)) / max(base, 1e-12))
    return out


def mce(accuracies: Mapping[str, Sequence[float]],
        baseline: Mapping[str, Sequence[float]]) -> float:
    """Mean corruption error normalised to `baseline` (1.0 = as robust as the baseline)."""
    return float(np.mean(list(corruption_errors(accuracies, baseline).values())))


def relative_mce(accuracies: Mapping[str, Sequence[float]], clean: float,
                 baseline: Mapping[str, Sequence[float]], baseline_clean: float) -> float:
    """Mean over c of Σ_s (err_s − err_clean) / Σ_s (err_base_s − err_base_clean): how much
    accuracy the corruptions take away, relative to how much they take from the baseline."""
    ratios = []
    for c, accs in accuracies.items():
        drop = np.sum(clean - np.asarray(accs))
        base_drop = np.sum(baseline_clean - np.asarray(baseline[c]))
        ratios.append(drop / base_drop if abs(base_drop) > 1e-12 else np.nan)
    return float(np.nanmean(ratios))
