"""TFF execution contexts whose C++ `worker_binary` processes tfkit owns and stops.

TFF's own `set_sync_local_cpp_execution_context()` spawns a `worker_binary` that inherits the
caller's stdout and outlives it, so a piped run (`tfkit ... | cat`) or a CI job never ends. Here
every worker is started by tfkit with stdout/stderr to a log file, is killed with its parent
(Linux `PR_SET_PDEATHSIG`), and is stopped at normal exit, on an exception and on SIGTERM.

    from tfkit.federated import runtime
    with runtime.local_context():            # one local worker, listening on 127.0.0.1 only
        result = my_tff_computation(...)
    with runtime.remote_context(["10.0.0.5:8000", "10.0.0.6:8000"]):
        ...                                  # the same computations over gRPC workers

Security: TFF 0.87's `worker_binary` listens on every interface with no authentication;
`tfkit.federated.workers` (where the processes are started) says how tfkit restricts it and
how to keep workers off open networks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

from tfkit.errors import TfkitError
from tfkit.federated.workers import (
    LOOPBACK,
    WorkerNotReadyError,
    WorkerProcess,
    forget,
    free_port,
    start_worker,
    stop_all_workers,
    wait_ready,
    worker_binary_path,
)

__all__ = ["WorkerProcess", "WorkerNotReadyError", "NoContextError", "worker_binary_path",
           "start_worker", "stop_all_workers", "check_worker_address", "wait_for_workers",
           "local_context", "remote_context", "require_context", "free_port", "LOOPBACK"]
# `tfkit fedmd worker` (a worker in the foreground) is tfkit.federated.serve.serve_worker


class NoContextError(TfkitError, RuntimeError):
    """A tfkit TFF program was called with no TFF context installed (see `require_context`)."""


def require_context(what: str) -> None:
    """Raises `NoContextError` when no TFF context is installed and TFF's import-time default
    would run `what`: that default starts a local `worker_binary` of its own, which nothing
    stops (it outlives this process and keeps a piped run's output open, so the pipe never
    ends). A context installed by `local_context`, `remote_context` or the caller passes, and so
    does a default the caller set (`tff.framework.set_default_context`) that is not TFF's local
    C++ one."""
    import tensorflow_federated as tff

    frames = getattr(tff.framework.get_context_stack(), "_stack", None)  # TFF 0.87's stack
    if frames is None or len(frames) != 1:  # unknown layout, or a context is installed
        return
    factory = getattr(frames[0], "_executor_factory", None)
    stack_fn = getattr(factory, "_executor_stack_fn", None)
    # another thread than the one that installed the context sees TFF's RuntimeErrorContext
    other_thread = type(frames[0]).__name__ == "RuntimeErrorContext"
    if other_thread or "local_cpp_executor_factory" in getattr(stack_fn, "__qualname__", ""):
        raise NoContextError(
            f"{what} needs a TFF context: call it inside `with runtime.local_context():` "
            "(simulation) or `with runtime.remote_context([\"host:port\", ...]):` "
            "(from tfkit.federated import runtime), in the thread that calls it; TFF's "
            "default context would start a worker_binary that nothing stops")


_GRPC_OPTIONS = [("grpc.max_message_length", 2_000_000_000),
                 ("grpc.max_receive_message_length", 2_000_000_000),
                 ("grpc.max_send_message_length", 2_000_000_000)]


def _executor_factory(address: str, default_num_clients: int) -> Any:
    """A TFF executor factory over one worker; CLIENTS defaults to `default_num_clients`
    so that server-only computations are accepted by the worker."""
    import grpc
    import tensorflow_federated as tff
    from tensorflow_federated.python.core.impl.types import placements

    channel = grpc.insecure_channel(address, _GRPC_OPTIONS)
    stub = tff.framework.RemoteExecutorGrpcStub(channel)

    def stack_fn(cardinalities: dict) -> Any:
        if not cardinalities.get(placements.CLIENTS):
            cardinalities[placements.CLIENTS] = default_num_clients
        executor = tff.framework.RemoteExecutor(stub)
        executor.set_cardinalities(cardinalities)
        return executor

    return tff.framework.ResourceManagingExecutorFactory(executor_stack_fn=stack_fn)


def _context_kwargs() -> dict:
    import tensorflow_federated as tff
    from tensorflow_federated.python.core.environments.tensorflow_frontend import (
        tensorflow_computation,
    )

    return dict(compiler_fn=tff.backends.native.desugar_and_transform_to_native,
                transform_args=tensorflow_computation.transform_args,
                transform_result=tensorflow_computation.transform_result)


@contextlib.contextmanager
def _installed(context: Any) -> Iterator[Any]:
    import tensorflow_federated as tff

    stack = tff.framework.get_context_stack()
    with stack.install(context):
        yield context


@contextlib.contextmanager
def local_context(default_num_clients: int = 1, log_dir: str | os.PathLike | None = None,
                  bind: str | None = LOOPBACK) -> Iterator[Any]:
    """Runs TFF computations in a local C++ worker that is stopped when the block ends.

    The worker listens on `bind` only (default 127.0.0.1; see `start_worker` for when it
    cannot be restricted, which is warned).
    """
    import tensorflow_federated as tff

    worker = start_worker(log_dir=log_dir, bind=bind)  # stops it itself if it never gets ready
    try:
        context = tff.framework.SyncExecutionContext(
            executor_fn=_executor_factory(worker.address, default_num_clients),
            **_context_kwargs())
        with _installed(context):
            yield context
    finally:
        forget(worker)


def check_worker_address(address: str) -> None:
    """Raises ValueError unless `address` is `host:port` with a port 1-65535."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"worker address {address!r} must look like host:port")


def wait_for_workers(addresses: Sequence[str], timeout: float = 60.0) -> None:
    """Waits until every worker `host:port` answers gRPC.

    Args:
        addresses: the workers, e.g. `["10.0.0.5:8000"]`.
        timeout: seconds to wait for each; then `WorkerNotReadyError`.

    A malformed address raises ValueError.
    """
    if not addresses:
        raise ValueError("remote_context needs at least one worker address host:port")
    for address in addresses:
        check_worker_address(address)
    for address in addresses:
        wait_ready(address, timeout=timeout)


@contextlib.contextmanager
def remote_context(addresses: Sequence[str], default_num_clients: int = 1,
                   timeout: float = 60.0) -> Iterator[Any]:
    """Runs TFF computations across remote workers (`host:port`, started with
    `tfkit fedmd worker --port P`): clients are split among the workers and the partial results
    merged (TFF's mergeable-computation context)."""
    import tensorflow_federated as tff

    wait_for_workers(addresses, timeout)
    asyncs = [tff.framework.AsyncExecutionContext(
        executor_fn=_executor_factory(a, default_num_clients), **_context_kwargs())
        for a in addresses]
    context = tff.backends.native.create_mergeable_comp_execution_context(asyncs)
    with _installed(context):
        yield context

