"""The TFF C++ `worker_binary` processes tfkit starts: logged, checked, stopped at exit.

Every worker is started with stdout/stderr to a log file, is killed with its parent (Linux
`PR_SET_PDEATHSIG`), and is stopped at normal exit, on an exception and on SIGTERM
(`tfkit.federated.runtime` builds TFF execution contexts over them).

Security: TFF 0.87's `worker_binary` takes only `--port` and binds `[::]:PORT`, i.e. EVERY
interface, with no authentication or encryption; whoever reaches the port can run arbitrary
TensorFlow graphs (which read and write files) as this user. tfkit therefore starts its workers
with `tfkit.federated.bind`'s preloaded shim, which turns that bind into one IPv4 address:
127.0.0.1 for `local_context`/`start_worker` (checked after start-up in /proc/net), or the
address given to `tfkit fedmd worker --bind ADDR`. Where the shim cannot be built (no C
compiler, not Linux) a local worker falls back to every interface with a warning, and
`tfkit fedmd worker` without `--bind` listens on every interface. Keep such workers off open
networks: drop the port on every interface but loopback on the worker host
(`iptables -I INPUT -p tcp --dport PORT ! -i lo -j DROP` and the same with `ip6tables`, as the
wildcard bind takes IPv6 too; or `ufw deny PORT`, which covers both), run remote
workers only on a private network / VPC whose firewall admits the driver alone, or firewall the
port as above and reach it through an SSH tunnel (`ssh -N -L 8000:127.0.0.1:8000 host`).
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tfkit.errors import TfkitError
from tfkit.federated.bind import BindError, bind_env, listening_addresses

__all__ = ["WorkerProcess", "WorkerNotReadyError", "worker_binary_path", "start_worker",
           "stop_all_workers", "forget", "wait_ready", "check_bind", "die_with_parent_fn",
           "logging_env",
           "free_port", "LOOPBACK"]

LOOPBACK = "127.0.0.1"  # where local workers listen (IPv4: the shim binds one IPv4 address)

_LOG = logging.getLogger(__name__)
_LIVE: list[WorkerProcess] = []
_LOCK = threading.RLock()  # re-entrant: the SIGTERM handler may run while the main thread holds it
_HANDLERS_INSTALLED = False


class WorkerNotReadyError(TfkitError, RuntimeError):
    """A TFF worker exited by itself (e.g. while starting), or did not answer gRPC in time."""


def worker_binary_path() -> Path:
    """The C++ worker shipped inside the tensorflow-federated wheel."""
    import tensorflow_federated as tff

    path = Path(tff.__file__).parent / "data" / "worker_binary"
    if not path.is_file():
        raise RuntimeError(f"TFF worker binary not found at {path}; reinstall "
                           "tensorflow-federated==0.87.0")
    return path


def logging_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) with TensorFlow's C++ errors on: a worker's log is where
    it says why it failed (`tfkit`'s CLI turns them off for its own output)."""
    out = dict(os.environ if env is None else env)
    if out.get("TF_CPP_MIN_LOG_LEVEL", "0") not in ("0", "1", "2"):
        out["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return out


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port on `host`."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@functools.cache
def _prctl() -> Any:
    """libc's `prctl`, looked up in the parent: dlopen is not safe between fork and exec."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:
        return None


def die_with_parent_fn() -> Any:
    """A `preexec_fn` that makes the child get SIGTERM when its parent dies (Linux), or None."""
    prctl = _prctl() if sys.platform.startswith("linux") else None
    if prctl is None:
        return None

    def die_with_parent() -> None:  # runs in the child between fork and exec: no allocation
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return die_with_parent


def _warn_exposed(port: int, why: str) -> None:
    _LOG.warning("TFF worker_binary listens on port %d on ALL interfaces with no authentication "
                 "(%s): other hosts can reach it and run TensorFlow graphs unless a firewall "
                 "blocks the port (see docs/fedmd.md, Security)", port, why)


def _install_handlers() -> None:
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    _HANDLERS_INSTALLED = True
    atexit.register(stop_all_workers)
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: Any) -> None:
            stop_all_workers()
            if callable(previous) and previous not in (signal.SIG_IGN, signal.SIG_DFL):
                previous(signum, frame)
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, on_sigterm)


class WorkerProcess:
    """One `worker_binary --port=P` process owned by this Python process.

    Args:
        port: its TCP port.
        log_path: where its stdout and stderr go.
        bind: the one IPv4 address it listens on (`tfkit.federated.bind`), or None for every
            interface.
        env: its environment, already holding what applies `bind` (`bind_env(bind)`, as
            `start_worker` passes it); None computes it from `bind`.
    """

    def __init__(self, port: int, log_path: Path, bind: str | None = None,
                 env: dict[str, str] | None = None):
        self.port = port
        self.log_path = log_path
        self.bind = bind
        if env is None and bind:
            env = bind_env(bind)
        env = logging_env(env)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(worker_binary_path()), f"--port={port}"], env=env,
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent_fn())

    @property
    def address(self) -> str:
        """Where tfkit dials it: its bind address, or loopback when it listens everywhere."""
        return f"{self.bind or LOOPBACK}:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def start_worker(port: int | None = None, log_dir: str | os.PathLike | None = None,
                 timeout: float = 60.0, bind: str | None = LOOPBACK, require_bind: bool = False
                 ) -> WorkerProcess:
    """Starts a local worker (stopped at exit) and waits until its gRPC port answers.

    Args:
        port: its TCP port (default: a free one).
        log_dir: where its log goes (default: the temp directory).
        timeout: seconds to wait for it; a worker that exits or does not answer in time is
            stopped and a RuntimeError raised.
        bind: the IPv4 address it listens on (default: loopback only), or None for every
            interface (warned). Checked after start-up where /proc/net can be read.
        require_bind: raise `BindError` when `bind` cannot be applied (no C compiler, not
            Linux) instead of falling back to every interface with a warning.
    """
    _install_handlers()
    port = port or free_port(bind or LOOPBACK)
    log_dir = Path(log_dir or tempfile.gettempdir())
    env = None
    if bind is not None:
        try:
            env = bind_env(bind)  # builds the shim once, or says why it cannot
        except BindError as e:
            if require_bind:
                raise
            _warn_exposed(port, f"could not restrict it to {bind}: {e}")
            bind = None
    else:
        _warn_exposed(port, "bind=None")
    worker = WorkerProcess(port, log_dir / f"tfkit_worker_{port}.log", bind=bind, env=env)
    with _LOCK:
        _LIVE.append(worker)
    try:
        wait_ready(worker.address, worker, timeout)
        check_bind(worker.port, worker.bind, f" (log: {worker.log_path})")
    except BaseException:
        forget(worker)
        raise
    return worker


def check_bind(port: int, bind: str | None, where: str = "") -> None:
    """Raises when the worker on `port` listens anywhere but `bind` (read from /proc/net; no
    check where /proc cannot be read). The caller stops the worker."""
    listening = listening_addresses(port)
    if bind and listening and listening != [bind]:
        raise BindError(f"TFF worker on port {port} listens on {listening}, not only on {bind}; "
                        f"stopped it{where}")


def forget(worker: WorkerProcess) -> None:
    """Stops `worker` and drops it from the workers stopped at exit."""
    worker.stop()
    with _LOCK:
        if worker in _LIVE:
            _LIVE.remove(worker)


def wait_ready(address: str, worker: WorkerProcess | None = None, timeout: float = 60.0
                ) -> None:
    """Waits until `address` answers gRPC; fails fast when the local `worker` exits."""
    import grpc

    channel = grpc.insecure_channel(address)
    future = grpc.channel_ready_future(channel)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                future.result(timeout=min(0.2, max(deadline - time.monotonic(), 0.0)))
                return
            except grpc.FutureTimeoutError:
                pass
            if worker is not None and not worker.alive():
                raise WorkerNotReadyError(f"TFF worker on {address} exited with code "
                                          f"{worker.process.returncode}; log: {worker.log_path}")
            if time.monotonic() >= deadline:
                hint = "" if worker is not None else (
                    ": is `tfkit fedmd worker --port PORT` running there, and do the address, "
                    "port and any firewall or SSH tunnel let this host reach it?")
                raise WorkerNotReadyError(f"no TFF worker answered on {address} within "
                                          f"{timeout:.0f}s{hint}")
    finally:
        future.cancel()
        channel.close()


def stop_all_workers() -> None:
    """Stops every worker this process started (idempotent)."""
    with _LOCK:
        workers = list(_LIVE)
        _LIVE.clear()
    for w in workers:
        w.stop()
