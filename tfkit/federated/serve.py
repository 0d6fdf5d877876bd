"""`tfkit fedmd worker`: one TFF `worker_binary` in the foreground, for a multi-host run.

    from tfkit.federated.serve import serve_worker
    serve_worker(8000, bind="10.0.0.5")   # until SIGINT/SIGTERM; 0 when stopped

The worker has no authentication:
see `tfkit.federated.workers` and docs/fedmd.md (Security) for where it may listen.
"""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Any

from tfkit.federated import workers
from tfkit.federated.bind import BindError, bind_env, listening_addresses

__all__ = ["serve_worker"]


def serve_worker(port: int, bind: str | None = None) -> int:
    """Runs one worker in the foreground until SIGINT/SIGTERM (`tfkit fedmd worker`).

    Args:
        port: its TCP port.
        bind: the one IPv4 address of this host to listen on (e.g. a private interface's);
            None listens on every interface. A `BindError` says why it cannot be applied.

    Returns 0 when stopped by SIGINT/SIGTERM. Raises `workers.WorkerNotReadyError` when the
    worker exits by itself (it does so only when it fails, e.g. the port in use or `bind` not an
    address of this host; TFF's worker then exits with code 0).

    Examples:

    >>> serve_worker(8000, bind="127.0.0.1")  # doctest: +SKIP
    """
    binary = workers.worker_binary_path()  # looked up on the module: tests replace it there
    env = workers.logging_env(bind_env(bind) if bind else None)
    if bind:
        print(f"TFF worker listening on {bind}:{port} only, no authentication: keep that "
              "network private. Ctrl-C stops it.", flush=True)
    else:
        print(f"TFF worker listening on port {port} on ALL interfaces, no authentication: "
              f"pass --bind ADDR (a private interface's address), firewall the port (e.g. ufw "
              f"deny {port}, or iptables and ip6tables -I INPUT -p tcp --dport {port} ! -i lo "
              "-j DROP; then an SSH tunnel) or keep the host on a private network. "
              "Ctrl-C stops it.", flush=True)
    stopping: list[float] = []
    procs: list[subprocess.Popen] = []

    def forward(signum: int, frame: Any) -> None:  # installed before the worker starts, so a
        stopping.append(time.time())  # stop request at any moment reaches it
        for p in procs:
            p.send_signal(signal.SIGINT)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    proc = subprocess.Popen([str(binary), f"--port={port}"], stdin=subprocess.DEVNULL, env=env,
                            preexec_fn=workers.die_with_parent_fn())
    procs.append(proc)
    if stopping:  # the request came while it was starting
        proc.send_signal(signal.SIGINT)
    if bind:  # check what it really bound, as start_worker does
        deadline = time.time() + 30.0
        while (proc.poll() is None and not stopping and not listening_addresses(port)
               and time.time() < deadline):
            time.sleep(0.1)
        try:
            workers.check_bind(port, bind)
        except BindError:
            proc.kill()
            proc.wait()
            raise
    while proc.poll() is None:
        if stopping and time.time() - stopping[0] > 5.0:  # the worker ignored SIGINT
            proc.kill()
        time.sleep(0.2)
    if stopping:
        return 0
    # worker_binary exits by itself only when it fails, e.g. with code 0 when it cannot bind
    where = f" and is {bind} an address of this host" if bind else ""
    raise workers.WorkerNotReadyError(
        f"the TFF worker on port {port} exited by itself with code {proc.returncode} (its "
        f"messages are above): is the port free{where}?")
