"""FedMD's round as small stages: communicate -> aggregate + distribute (TFF) -> digest -> revisit.

`communicate`, `digest` and `revisit` run on each party's own Keras model (party-side, Python and
compiled `tf.function`s). `build_consensus_computation` is the federated part: a
`tff.federated_computation` that takes every party's logits as a CLIENTS-placed value, forms
their (weighted) mean at the SERVER and broadcasts it back, so that TFF's runtime (a local C++
worker, or remote workers over gRPC) carries all communication.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from tfkit.federated.fedmd.party import Party

__all__ = ["PartyOutcome", "build_consensus_computation", "communicate", "digest", "revisit",
           "evaluate", "map_parties"]


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


def _call(party: Party, fn: Callable[[Party], object]) -> dict:
    """`fn(party)` with its seconds; an exception is caught and described (a failing party must
    not stop the federation)."""
    t0 = time.perf_counter()
    try:
        return {"value": fn(party), "seconds": time.perf_counter() - t0}
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=2),
                "seconds": time.perf_counter() - t0}


def _outcome(party: Party, call: dict, stage: str, deadline_s: float | None,
             log: Callable[[str], None]) -> PartyOutcome:
    """A finished `_call` as an outcome; one that raised or came after `deadline_s` is logged
    and reported as failed."""
    seconds = call["seconds"]
    if "error" in call:
        log(f"{stage}: party {party.name} failed and is left out this round ({call['error']})\n"
            + call["traceback"])
        return PartyOutcome(party.name, None, seconds, call["error"])
    if deadline_s is not None and seconds > deadline_s:
        reason = f"took {seconds:.1f}s > deadline {deadline_s:.1f}s"
        log(f"{stage}: party {party.name} {reason}; its result is discarded this round")
        return PartyOutcome(party.name, None, seconds, reason)
    return PartyOutcome(party.name, call["value"], seconds)


def _run_one(party: Party, fn: Callable[[Party], object], stage: str,
             deadline_s: float | None, log: Callable[[str], None]) -> PartyOutcome:
    """Runs `fn(party)`; a party that raises or exceeds `deadline_s` is reported as failed (and
    logged) instead of stopping the round."""
    return _outcome(party, _call(party, fn), stage, deadline_s, log)


def _start(party: Party, fn: Callable[[Party], object]) -> tuple[threading.Thread, dict]:
    """`_call(party, fn)` in a daemon thread of its own (a party that never answers must not
    keep the program from exiting); the thread's `dict` holds the call once it ends."""
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(_call(party, fn)), daemon=True,
                              name=f"tfkit-fedmd-{party.name}")
    thread.start()
    return thread, box


def _with_deadline(parties: Sequence[Party], fn: Callable[[Party], object], stage: str,
                   deadline_s: float, log: Callable[[str], None], max_parallel: int,
                   unanswered: dict[str, threading.Thread]) -> list[PartyOutcome]:
    """`_run_one` for every party, `max_parallel` at a time, without waiting for a party past
    its deadline: such a party is left out and its call keeps running in its thread (Python
    cannot stop it), recorded in `unanswered`. A party whose call from an earlier round is
    still running there is left out until it answers (its late result is discarded)."""
    outcomes: list[PartyOutcome | None] = [None] * len(parties)
    waiting: deque[int] = deque()
    for i, party in enumerate(parties):
        if party.name in unanswered and unanswered[party.name].is_alive():
            reason = "still busy with an earlier round's call"
            log(f"{stage}: party {party.name} is {reason}; left out this round")
            outcomes[i] = PartyOutcome(party.name, None, 0.0, reason)
        else:
            unanswered.pop(party.name, None)
            waiting.append(i)
    running: deque[tuple[int, threading.Thread, dict, float]] = deque()  # in start order
    while waiting or running:
        while waiting and len(running) < max_parallel:
            i = waiting.popleft()
            running.append((i, *_start(parties[i], fn), time.perf_counter()))
        i, thread, box, started = running.popleft()
        thread.join(max(0.0, started + deadline_s - time.perf_counter()))
        party = parties[i]
        if thread.is_alive():
            unanswered[party.name] = thread
            reason = f"no answer within the deadline {deadline_s:.1f}s"
            log(f"{stage}: party {party.name} gave {reason}; left out this round (its call "
                "goes on in the background, and the party is left out until it answers)")
            outcomes[i] = PartyOutcome(party.name, None, deadline_s, reason)
        else:
            outcomes[i] = _outcome(party, box, stage, deadline_s, log)
    return outcomes  # type: ignore[return-value]


def map_parties(parties: Sequence[Party], fn: Callable[[Party], object], max_parallel: int,
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
    return map_parties(parties, lambda p: _run_one(p, fn, stage, deadline_s, log),
                        max_parallel, stage)


def communicate(parties: Sequence[Party], x_align: np.ndarray, deadline_s: float | None,
                log: Callable[[str], None], max_parallel: int = 1,
                unanswered: dict[str, threading.Thread] | None = None) -> list[PartyOutcome]:
    """Every party computes its class scores on the alignment set. A party that raises, or (with
    `deadline_s`) has not answered by its deadline, is left out; the round does not wait for
    it. `unanswered` carries the calls still running from earlier rounds (see
    `_with_deadline`); keep one dict for the whole run."""
    if deadline_s is None:
        return _guarded(parties, lambda p: p.logits(x_align), "communicate", None, log,
                        max_parallel)
    return _with_deadline(parties, lambda p: p.logits(x_align), "communicate", deadline_s, log,
                          max_parallel, {} if unanswered is None else unanswered)


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
    return map_parties(parties, lambda p: p.accuracy(x_test, y_test), max_parallel, "evaluate")
