"""`build_fedmd_process`: FedMD as a `tff.templates.IterativeProcess`.

    process = build_fedmd_process(parties, public_x, alignment_size=5000)
    with runtime.local_context():          # or runtime.remote_context(["host:port", ...])
        state = process.initialize()
        for _ in range(rounds):
            state, metrics = process.next(state)

How the work is split (see docs/fedmd.md):

* `initialize` returns the server state `<round=int32>` from a TFF TensorFlow computation.
  Both it and `next` refuse to run outside a TFF context (`runtime.NoContextError`): TFF's
  import-time default would start a `worker_binary` that nothing stops.
* `next` is a typed *host* computation (`(<round=int32> -> <state=<round=int32>,
  metrics=<...>>)`) that composes the round's stages. Party-side stages (communicate = computing
  logits, digest, revisit, evaluate) run each party's own Keras model in Python with compiled
  `tf.function`s, because heterogeneous models cannot share one TFF type. The aggregate and
  distribute stages are one `tff.federated_computation` (federated mean + broadcast of the
  logits) executed by whatever TFF context is installed, local or remote workers.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tfkit.errors import TfkitError
from tfkit.federated import runtime
from tfkit.federated.fedmd import stages
from tfkit.federated.fedmd.party import Party, to_float_images

__all__ = ["call_with_timeout", "HostComputation", "WorkerError", "build_fedmd_process",
           "alignment_indices"]

STAGES = ("communicate", "aggregate", "digest", "revisit", "evaluate")


class WorkerError(TfkitError, RuntimeError):
    """The TFF runtime (a local or remote worker) failed during a federated stage."""


def alignment_indices(num_public: int, size: int, seed: int, round_num: int) -> np.ndarray:
    """The fresh random alignment subset of round `round_num` (every party derives the same
    indices from the shared seed, so only the seed needs to be agreed, not the indices)."""
    rng = np.random.default_rng([seed, round_num])
    return np.sort(rng.choice(num_public, size=min(size, num_public), replace=False))


def call_with_timeout(fn: Callable[..., Any], timeout_s: float | None, *args: Any) -> Any:
    """Calls the TFF computation `fn(*args)` in the current TFF context, giving up after
    `timeout_s` seconds (a remote worker that died mid-call otherwise blocks forever)."""
    import tensorflow_federated as tff

    if timeout_s is None:
        return fn(*args)
    context = tff.framework.get_context_stack().current  # the stack is thread-local
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            with tff.framework.get_context_stack().install(context):
                box["value"] = fn(*args)
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    thread = threading.Thread(target=target, daemon=True, name="tfkit-fedmd-aggregate")
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no answer from the TFF runtime within {timeout_s:.0f}s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _host_computation_base() -> type:
    from tensorflow_federated.python.core.impl.computation import computation_base

    return computation_base.Computation


class HostComputation(_host_computation_base()):
    """A typed `tff.Computation` whose body runs in the driver's Python process.

    FedMD's `next` composes party-side Keras work (which TFF cannot type, since every party's
    model differs) with federated computations (which TFF runs). Its type signature documents
    and checks the state and metrics structure for `tff.templates.IterativeProcess`.
    """

    def __init__(self, fn: Callable[..., Any], type_signature: Any):
        self._fn = fn
        self._type_signature = type_signature

    @property
    def type_signature(self) -> Any:
        return self._type_signature

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def __hash__(self) -> int:
        return id(self)


def _types(num_parties: int) -> tuple[Any, Any]:
    import tensorflow_federated as tff

    state_type = tff.StructType([("round", np.int32)])
    stage_type = tff.StructType([(s, np.float32) for s in STAGES])
    metrics_type = tff.StructType([
        ("accuracy", tff.TensorType(np.float32, [num_parties])),
        ("participated", tff.TensorType(np.int32, [num_parties])),
        ("bytes_up", np.int64), ("bytes_down", np.int64),
        ("fedavg_bytes_up", np.int64), ("fedavg_bytes_down", np.int64),
        ("seconds", np.float32), ("stage_seconds", stage_type),
    ])
    return state_type, metrics_type


def build_fedmd_process(
    parties: Sequence[Party],
    public_x: np.ndarray,
    *,
    alignment_size: int = 5000,  # the paper: a fresh random 5000 public samples per round
    digest_epochs: int = 1,  # the paper: 1 epoch of logit matching per round
    revisit_epochs: int = 4,  # the authors' code: a few epochs on private data per round
    party_weights: Sequence[float] | None = None,  # None = plain mean of the logits
    deadline_s: float | None = None,  # None = wait for every party
    aggregate_timeout_s: float | None = 300.0,  # a dead remote worker fails the round after this
    test_data: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
    max_parallel_parties: int = 1,  # serial: TF's intra-op threads already use every core
    log: Callable[[str], None] = print,
) -> Any:
    """Builds FedMD's round for `parties` as a `tff.templates.IterativeProcess`.

    Args:
        parties: the participants (each its own Keras model and private data).
        public_x: the public images all parties hold (the alignment pool).
        alignment_size: samples in each round's fresh alignment subset.
        digest_epochs: epochs fitting the consensus (MAE, the party's digest batch size).
        revisit_epochs: epochs on private data after digesting.
        party_weights: per-party weights of the consensus mean (e.g. private data sizes).
        deadline_s: a party whose logits take longer is left out of that round's consensus;
            the round goes on without waiting for it. Its call cannot be stopped, so it runs
            on in the background, and the party is left out of later rounds until it answers
            (that late result is discarded).
        aggregate_timeout_s: the aggregate stage raises `WorkerError` after this long (e.g. a
            killed remote worker); None waits forever.
        test_data: (x, y) evaluated after every round (`metrics.accuracy`); else zeros.
        seed: seeds the alignment subsets.
        max_parallel_parties: how many parties' party-side work (logits, digest, revisit,
            evaluation) runs at once, in threads of this process. Parties share no state, so
            results are the same for every value; more than one can use cores that one
            party's small convolutions leave idle (see benchmarks/fedmd_round.py).
        log: where messages about dropped parties go.

    Returns:
        A `tff.templates.IterativeProcess`; `next(state) -> (state, metrics)`. Must be called
        inside a TFF context (`tfkit.federated.runtime.local_context()` / `remote_context()`).
    """
    import tensorflow as tf
    import tensorflow_federated as tff

    parties = list(parties)
    if not parties:
        raise ValueError("FedMD needs at least one party")
    weights = np.ones(len(parties), np.float32) if party_weights is None else \
        np.asarray(party_weights, np.float32)
    if max_parallel_parties < 1:
        raise ValueError(f"max_parallel_parties must be >= 1, got {max_parallel_parties}")
    if weights.shape != (len(parties),) or not np.all(np.isfinite(weights) & (weights > 0)):
        raise ValueError(f"party_weights must be {len(parties)} positive numbers, got {weights}")
    public_x = to_float_images(np.asarray(public_x))
    num_classes = int(parties[0].model.output_shape[-1])
    for p in parties:
        if int(p.model.output_shape[-1]) != num_classes:
            raise ValueError(f"party {p.name} outputs {p.model.output_shape[-1]} logits, "
                             f"others {num_classes}: all parties must score the same classes")
    for p in parties:  # a wrong shape here would only show as every party failing a round
        p.check_images(public_x, "public_x")
        if test_data is not None:
            p.check_data(np.asarray(test_data[0]), test_data[1], "test_data")
    if not len(public_x) or alignment_size < 1:
        raise ValueError(f"FedMD needs public images and alignment_size >= 1, got "
                         f"{len(public_x)} public images and alignment_size={alignment_size}")
    size = min(alignment_size, len(public_x))
    consensus_fn = stages.build_consensus_computation(size, num_classes)
    fedavg_bytes = sum(4 * p.num_parameters() for p in parties)
    state_type, metrics_type = _types(len(parties))
    unanswered: dict = {}  # party name -> the thread of its call that missed a deadline

    @tff.tensorflow.computation
    def initialize_tf():
        return collections.OrderedDict(round=tf.constant(0, tf.int32))

    def initialize_fn() -> Any:
        runtime.require_context("FedMD's process.initialize")
        return initialize_tf()

    initialize = HostComputation(initialize_fn, initialize_tf.type_signature)

    def next_fn(state: Any) -> tuple[Any, Any]:
        runtime.require_context("FedMD's process.next")
        round_num = int(state["round"]) + 1
        t_round = time.perf_counter()
        timer = stages.StageTimer()
        x_align = public_x[alignment_indices(len(public_x), size, seed, round_num)]

        t0 = time.perf_counter()
        outcomes = stages.communicate(parties, x_align, deadline_s, log, max_parallel_parties,
                                      unanswered)
        timer.add("communicate", time.perf_counter() - t0)
        ok = [i for i, o in enumerate(outcomes) if o.ok]
        if not ok:
            raise TfkitError(f"round {round_num}: every party failed; see the log above")

        t0 = time.perf_counter()
        try:
            consensus = np.asarray(call_with_timeout(
                consensus_fn, aggregate_timeout_s, [outcomes[i].value for i in ok],
                [float(weights[i]) for i in ok]))
        except Exception as e:
            raise WorkerError(
                f"round {round_num}: the TFF runtime failed in the aggregate stage "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); if a "
                "worker was stopped, restart it and re-run the same command (same --out) to "
                "resume from the last finished round") from e
        timer.add("aggregate", time.perf_counter() - t0)

        members = [parties[i] for i in ok]
        t0 = time.perf_counter()
        digested = stages.digest(members, x_align, consensus, digest_epochs, log,
                                 max_parallel_parties)
        timer.add("digest", time.perf_counter() - t0)
        t0 = time.perf_counter()
        stages.revisit([p for p, o in zip(members, digested, strict=True) if o.ok],
                       revisit_epochs, log, max_parallel_parties)
        timer.add("revisit", time.perf_counter() - t0)

        t0 = time.perf_counter()
        accuracy = [0.0] * len(parties) if test_data is None else \
            stages.evaluate(parties, *test_data, max_parallel_parties)
        timer.add("evaluate", time.perf_counter() - t0)
        participated = np.zeros(len(parties), np.int32)
        participated[ok] = 1
        metrics = collections.OrderedDict(
            accuracy=np.asarray(accuracy, np.float32),
            participated=participated,
            bytes_up=np.int64(sum(outcomes[i].value.nbytes for i in ok)),
            bytes_down=np.int64(len(ok) * consensus.nbytes),
            fedavg_bytes_up=np.int64(fedavg_bytes), fedavg_bytes_down=np.int64(fedavg_bytes),
            seconds=np.float32(time.perf_counter() - t_round),
            stage_seconds=collections.OrderedDict(
                (s, np.float32(timer.seconds.get(s, 0.0))) for s in STAGES))
        return collections.OrderedDict(round=np.int32(round_num)), metrics

    next_comp = HostComputation(next_fn, tff.FunctionType(
        state_type, tff.StructType([("state", state_type), ("metrics", metrics_type)])))
    process = tff.templates.IterativeProcess(initialize, next_comp)
    process.parties = parties
    process.alignment_size = size
    return process
