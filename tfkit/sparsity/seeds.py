"""Statistics over training seeds: the mean and spread of a comparison's metrics.

Single runs of small models move by a few points from seed to seed (and even with the thread
count, which changes the float summation order), so the Top-k vs dense comparison of the
`lazy-neuron` experiment is run for several seeds and reported as mean ± standard deviation,
with the per-seed values and the seed-paired difference to the reference model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["seed_statistics", "paired_difference"]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _combine(values: list[Any], reduce: Any) -> Any:
    """Applies `reduce` to the per-seed numbers at every leaf of identically shaped structures;
    a non-numeric leaf (e.g. a name, or None) is kept from the first seed."""
    first = values[0]
    if isinstance(first, dict):
        return {key: _combine([v[key] for v in values], reduce) for key in first}
    if isinstance(first, (list, tuple)):
        return [_combine(list(column), reduce) for column in zip(*values, strict=True)]
    if _is_number(first):
        return reduce(np.asarray(values, np.float64))
    return first


def _std(values: np.ndarray) -> float | None:
    """Sample standard deviation (ddof 1); None for a single seed (no spread measured)."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def seed_statistics(per_seed: list[dict], keep: tuple[str, ...] = ()) -> dict:
    """Mean over seeds in the same keys, plus `std` (same structure) and `per_seed`.

    Args:
        per_seed: one result dict per seed, all with the same keys and nesting (numbers, dicts
            and lists of numbers; a non-numeric value, such as a name, is taken from the first).
        keep: top-level keys that identify the setting rather than measure it (e.g. `k`):
            copied unchanged, not averaged; they must agree across seeds.

    Returns:
        The mean of every number under its own key (so one-seed readers keep working), with
        `std` holding the sample standard deviation of each (None with one seed) and
        `per_seed` the input dicts.

    Example:
        >>> s = seed_statistics([{"k": 8, "accuracy": 0.5}, {"k": 8, "accuracy": 0.7}], ("k",))
        >>> s["k"], round(s["accuracy"], 3), round(s["std"]["accuracy"], 4)
        (8, 0.6, 0.1414)
    """
    if not per_seed:
        raise ValueError("seed_statistics needs the results of at least one seed")
    kept = {key: per_seed[0][key] for key in keep}
    if any(r[key] != value for r in per_seed for key, value in kept.items()):
        raise ValueError(f"seed_statistics: the kept keys {list(keep)} differ across seeds")
    measured = [{key: v for key, v in r.items() if key not in kept} for r in per_seed]
    mean = _combine(measured, lambda v: float(np.mean(v)))
    return {**kept, **mean, "std": _combine(measured, _std), "per_seed": list(per_seed)}


def paired_difference(per_seed: list[dict], reference: list[dict], keys: tuple[str, ...]
                      ) -> dict:
    """Seed-paired difference `per_seed[i][key] - reference[i][key]`: mean, std and values.

    Pairing by seed removes what the two runs of a seed share (data order, noisy labels).

    Example:
        >>> d = paired_difference([{"acc": 0.6}, {"acc": 0.5}], [{"acc": 0.5}, {"acc": 0.5}],
        ...                       ("acc",))
        >>> round(d["acc"]["mean"], 3), [round(x, 3) for x in d["acc"]["per_seed"]]
        (0.05, [0.1, 0.0])
    """
    if len(per_seed) != len(reference):
        raise ValueError(f"paired_difference: {len(per_seed)} seeds vs {len(reference)} "
                         "reference seeds")
    diffs = [{key: _combine([a[key], b[key]], lambda v: float(v[0] - v[1])) for key in keys}
             for a, b in zip(per_seed, reference, strict=True)]
    stats = seed_statistics(diffs)
    return {key: {"mean": stats[key], "std": stats["std"][key],
                  "per_seed": [d[key] for d in diffs]} for key in keys}
