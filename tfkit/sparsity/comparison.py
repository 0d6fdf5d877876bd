"""The Top-k vs dense table: one row per model and seed, then mean ± std and seed-paired gaps.

A row summarizes one trained classifier (dense: `k` None; Top-k: its `k`) from its clean
evaluation (`evaluate_classifier` metrics: accuracy, ECE, corruption accuracies) and its
label-noise runs. Rows of several seeds combine into the one-seed keys (means) plus `std`,
`per_seed`, `seeds` and, for Top-k, `vs_dense`: differences to the dense row of the same seed.

Example:
    >>> dense = topk_row(None, 0, {"accuracy": 0.3, "ece": 0.03, "noise/1": 0.29},
    ...                  {"0.4": {"accuracy": 0.2, "ece": 0.2, "memorized": 0.4}}, [0.4])
    >>> top = topk_row(16, 0, {"accuracy": 0.31, "ece": 0.02, "noise/1": 0.3},
    ...                {"0.4": {"accuracy": 0.22, "ece": 0.1, "memorized": 0.5}}, [0.03])
    >>> d, t = combine_seeds([{None: dense, 16: top}])
    >>> round(t[0]["vs_dense"]["accuracy"]["mean"], 3), d["seeds"]
    (0.01, [0])
"""

from __future__ import annotations

import numpy as np

from tfkit.sparsity.seeds import paired_difference, seed_statistics

__all__ = ["PAIRED_METRICS", "topk_row", "seed_summary", "combine_seeds"]

# the metrics compared with the dense model seed by seed (`vs_dense` of every Top-k row)
PAIRED_METRICS = ("accuracy", "ece", "noisy_label_accuracy", "noisy_label_ece",
                  "noisy_label_memorized", "mean_corruption_accuracy")


def topk_row(k: int | None, seed: int, metrics: dict[str, float], noisy: dict[str, dict],
             nonzero_test: list[float]) -> dict:
    """One model of one seed.

    Args:
        k: the Top-k of the model (None = dense).
        seed: its training seed.
        metrics: clean test metrics: `accuracy`, `ece` and "<corruption>/<severity>" accuracies.
        noisy: {noise rate: {"accuracy", "ece", "memorized"}} of its label-noise runs.
        nonzero_test: nonzero fraction per MLP layer on test data.
    """
    corrupted = {key: v for key, v in metrics.items() if "/" in key}
    by_rate = lambda key: {rate: v[key] for rate, v in noisy.items()}
    return {"k": k, "seed": seed, "accuracy": metrics["accuracy"], "ece": metrics["ece"],
            "noisy_label_accuracy": by_rate("accuracy"), "noisy_label_ece": by_rate("ece"),
            "noisy_label_memorized": by_rate("memorized"),
            "corruption_accuracy": corrupted,
            "mean_corruption_accuracy": float(np.mean(list(corrupted.values()))),
            "nonzero_fraction_test": nonzero_test}


def seed_summary(per_seed: list[dict], dense: list[dict] | None) -> dict:
    """Mean over seeds in the one-seed keys, with `std`, `per_seed`, `seeds` and, given the
    dense rows of the same seeds, `vs_dense` (seed-paired differences); `dense=None` summarizes
    the dense model itself and drops `k`."""
    out = seed_statistics([{key: v for key, v in r.items() if key != "seed"} for r in per_seed],
                          keep=("k",))
    out["seeds"] = [r["seed"] for r in per_seed]
    if dense is None:
        out.pop("k")
    else:
        out["vs_dense"] = paired_difference(per_seed, dense, PAIRED_METRICS)
    return out


def combine_seeds(per_seed: list[dict]) -> tuple[dict, list[dict]]:
    """`per_seed`: one {k or None: row} per seed → (dense summary, [Top-k summary per k])."""
    dense_rows = [rows[None] for rows in per_seed]
    dense = seed_summary(dense_rows, None)
    topk = [seed_summary([rows[k] for rows in per_seed], dense_rows)
            for k in per_seed[0] if k is not None]
    return dense, topk
