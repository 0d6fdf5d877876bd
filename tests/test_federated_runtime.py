"""The TFF worker is owned by tfkit: a piped run ends and leaves no worker_binary behind."""

import os
import subprocess
import sys
import textwrap
import time

SCRIPT = textwrap.dedent("""
    import numpy as np
    import tensorflow_federated as tff
    from tfkit.federated import runtime

    @tff.federated_computation(tff.FederatedType(np.float32, tff.CLIENTS))
    def mean(x):
        return tff.federated_mean(x)

    with runtime.local_context():
        print("mean", mean([1.0, 2.0, 6.0]), flush=True)
    w = runtime.start_worker()          # left running on purpose: stopped at exit
    print("worker", w.process.pid, flush=True)
    {tail}
""")


def _workers(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return b"worker_binary" in f.read()


def _run_piped(tail: str) -> tuple[str, int]:
    """Runs the script with stdout piped into `cat`; returns output and the worker's pid."""
    py = subprocess.Popen([sys.executable, "-c", SCRIPT.format(tail=tail)],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    cat = subprocess.run(["cat"], stdin=py.stdout, capture_output=True, text=True, timeout=120)
    py.wait(timeout=30)
    pid = int(cat.stdout.split("worker")[1].split()[0])
    return cat.stdout, pid


def test_piped_run_closes_pipe_and_stops_worker():
    t0 = time.time()
    out, pid = _run_piped("")
    assert "mean 3.0" in out
    assert time.time() - t0 < 90
    time.sleep(0.5)
    assert not _workers(pid)


def test_exception_and_sigterm_stop_worker():
    _, pid = _run_piped("raise RuntimeError('boom')")
    time.sleep(0.5)
    assert not _workers(pid)
    _, pid = _run_piped("import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    time.sleep(0.5)
    assert not _workers(pid)


def test_remote_context_over_two_loopback_workers():
    code = textwrap.dedent("""
        import numpy as np
        import tensorflow_federated as tff
        from tfkit.federated import runtime

        @tff.federated_computation(tff.FederatedType(np.float32, tff.CLIENTS))
        def total(x):
            return tff.federated_sum(x)

        a, b = runtime.start_worker(), runtime.start_worker()
        with runtime.remote_context([a.address, b.address]):
            print("sum", total([1.0, 2.0, 3.0, 4.0]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=180)
    assert "sum 10.0" in out.stdout, out.stderr[-2000:]
