"""FedMD's round as small stages: communicate -> aggregate + distribute (TFF) -> digest -> revisit.

`communicate`, `digest` and `revisit` run on each party's own Keras model (party-side, Python and
compiled `tf.function`s). `build_consensus_computation` is the federated part: a
`tff.federated_computation` that takes every party's logits as a CLIENTS-placed value, forms
their (weighted) mean at the SERVER and broadcasts it back, so that TFF's runtime (a local C++
worker, or remote workers over gRPC) carries all communication.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from tfkit.federated.fedmd.party import Party

__all__ = ["PartyOutcome", "build_consensus_computation", "communicate", "digest", "revisit",
           "evaluate"]


@dataclass
class PartyOutcome:
    """What one party did in one stage: its result, or why it was left out."""

    name: str
    value: object = None
    seconds: float = 0.0
    error: str | None = None  # set when the party raised or missed the deadline

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class StageTimer:
    """Wall time per stage of one round."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


def build_consensus_computation(num_samples: int, num_classes: int) -> Callable:
    """The federated aggregate-and-distribute stage.

    Type: `(<logits={float32[N,C]}@CLIENTS, weights={float32}@CLIENTS> -> float32[N,C]@CLIENTS)`:
    the weighted mean of the parties' logits (`tff.federated_mean`), broadcast to every party.
    """
    import tensorflow_federated as tff

    logits_type = tff.TensorType(np.float32, [num_samples, num_classes])

    @tff.federated_computation(tff.FederatedType(logits_type, tff.CLIENTS),
                               tff.FederatedType(np.float32, tff.CLIENTS))
    def aggregate_and_distribute(logits, weights):
        consensus = tff.federated_mean(logits, weight=weights)  # aggregate (at the server)
        return tff.federated_broadcast(consensus)               # distribute

    return aggregate_and_distribute


def _run_one(party: Party, fn: Callable[[Party], object], stage: str,
             deadline_s: float | None, log: Callable[[str], None]) -> PartyOutcome:
    """Runs `fn(party)`; a party that raises or exceeds `deadline_s` is reported as failed (and
    logged) instead of stopping the round."""
    t0 = time.perf_counter()
    try:
        value = fn(party)
    except Exception as e:  # a failing party must not stop the federation
        seconds = time.perf_counter() - t0
        reason = f"{type(e).__name__}: {e}"
        log(f"{stage}: party {party.name} failed and is left out this round ({reason})\n"
            + traceback.format_exc(limit=2))
        return PartyOutcome(party.name, None, seconds, reason)
    seconds = time.perf_counter() - t0
    if deadline_s is not None and seconds > deadline_s:
        reason = f"took {seconds:.1f}s > deadline {deadline_s:.1f}s"
        log(f"{stage}: party {party.name} {reason}; its result is discarded this round")
        return PartyOutcome(party.name, None, seconds, reason)
    return PartyOutcome(party.name, value, seconds)


def _map_parties(parties: Sequence[Party], fn: Callable[[Party], object], max_parallel: int,
                 name: str) -> list:
    """`fn` of every party in party order, `max_parallel` parties at a time (Python threads;
    TensorFlow releases the GIL inside its ops). Parties share no state (own model, optimizers,
    shuffling and dropout generators), so the values do not depend on `max_parallel`."""
    if max_parallel <= 1 or len(parties) <= 1:
        return [fn(p) for p in parties]
    with ThreadPoolExecutor(min(max_parallel, len(parties)),
                            thread_name_prefix=f"tfkit-fedmd-{name}") as pool:
        return list(pool.map(fn, parties))


def _guarded(parties: Sequence[Party], fn: Callable[[Party], object], stage: str,
             deadline_s: float | None, log: Callable[[str], None],
             max_parallel: int = 1) -> list[PartyOutcome]:
    """`_run_one` for every party, `max_parallel` at a time; a party's seconds (and so its
    deadline) include the contention of the parties running beside it."""
    return _map_parties(parties, lambda p: _run_one(p, fn, stage, deadline_s, log),
                        max_parallel, stage)


def communicate(parties: Sequence[Party], x_align: np.ndarray, deadline_s: float | None,
                log: Callable[[str], None], max_parallel: int = 1) -> list[PartyOutcome]:
    """Every party computes its class scores on the alignment set (late or failing: dropped)."""
    return _guarded(parties, lambda p: p.logits(x_align), "communicate", deadline_s, log,
                    max_parallel)


def digest(parties: Sequence[Party], x_align: np.ndarray, consensus: np.ndarray, epochs: int,
           log: Callable[[str], None], max_parallel: int = 1) -> list[PartyOutcome]:
    """Every party fits the consensus logits with mean absolute error."""
    return _guarded(parties, lambda p: p.digest(x_align, consensus, epochs), "digest", None, log,
                    max_parallel)


def revisit(parties: Sequence[Party], epochs: int, log: Callable[[str], None],
            max_parallel: int = 1) -> list[PartyOutcome]:
    """Every party trains a few epochs on its private data."""
    return _guarded(parties, lambda p: p.train_private(epochs), "revisit", None, log,
                    max_parallel)


def evaluate(parties: Sequence[Party], x_test: np.ndarray, y_test: np.ndarray,
             max_parallel: int = 1) -> list[float]:
    """Test accuracy of every party."""
    return _map_parties(parties, lambda p: p.accuracy(x_test, y_test), max_parallel, "evaluate")
