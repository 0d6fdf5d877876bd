"""Client partitioners for federated experiments: iid, per-class, per-writer.

Each returns a list of index arrays, one per client, into the labels/groups given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["iid", "by_class", "by_group"]


def iid(num_examples: int, num_clients: int, seed: int = 0) -> list[np.ndarray]:
    """Shuffles and deals `num_examples` into `num_clients` near-equal shards."""
    if num_clients < 1 or num_clients > num_examples:
        raise ValueError(f"num_clients={num_clients} must be in [1, {num_examples}]")
    order = np.random.default_rng(seed).permutation(num_examples)
    return [np.sort(part) for part in np.array_split(order, num_clients)]


def by_class(labels: np.ndarray, num_clients: int, classes: Sequence[int],
             samples_per_class: int, seed: int = 0) -> list[np.ndarray]:
    """Each client gets `samples_per_class` examples of every class in `classes`, drawn
    without replacement across clients (FedMD's balanced setting: 10 x 6 classes x 3)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    parts: list[list[int]] = [[] for _ in range(num_clients)]
    for c in classes:
        idx = rng.permutation(np.flatnonzero(labels == c))
        need = num_clients * samples_per_class
        if len(idx) < need:
            raise ValueError(f"class {c}: {len(idx)} examples, need {need} "
                             f"({num_clients} clients x {samples_per_class})")
        for i in range(num_clients):
            parts[i].extend(idx[i * samples_per_class:(i + 1) * samples_per_class])
    return [np.sort(np.asarray(p, np.int64)) for p in parts]


def by_group(groups: np.ndarray, num_clients: int | None = None, seed: int = 0
             ) -> list[np.ndarray]:
    """Non-iid by writer: the groups (e.g. FEMNIST writer ids) are dealt to `num_clients`
    clients (default: one client per group), so no writer is split across clients."""
    groups = np.asarray(groups)
    names = np.unique(groups)
    if num_clients is None:
        return [np.flatnonzero(groups == g) for g in names]
    if num_clients < 1 or num_clients > len(names):
        raise ValueError(f"num_clients={num_clients} must be in [1, {len(names)} groups]")
    order = np.random.default_rng(seed).permutation(names)
    return [np.flatnonzero(np.isin(groups, chunk)) for chunk in np.array_split(order, num_clients)]
