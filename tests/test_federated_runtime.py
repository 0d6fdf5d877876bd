"""The TFF worker is owned by tfkit: a piped run ends and leaves no worker_binary behind."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent("""
    import numpy as np
    import tensorflow_federated as tff
    from tfkit.federated import runtime, workers
    from tfkit.federated.bind import listening_addresses

    @tff.federated_computation(tff.FederatedType(np.float32, tff.CLIENTS))
    def mean(x):
        return tff.federated_mean(x)

    with runtime.local_context():
        print("mean", mean([1.0, 2.0, 6.0]), flush=True)
        print("local listens", listening_addresses(workers._LIVE[-1].port), flush=True)
    w = runtime.start_worker()          # left running on purpose: stopped at exit
    print("worker", w.process.pid, flush=True)
    {tail}
""")


CAN_BIND = sys.platform.startswith("linux") and bool(shutil.which("cc") or shutil.which("gcc"))


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
    # worker_binary alone binds every interface ("*"); tfkit's workers listen on loopback only
    # (where the bind shim can be built: Linux and a C compiler; else every interface, warned)
    assert "local listens ['127.0.0.1']" in out or not CAN_BIND
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


def _fake_binary(tmp_path, body: str):
    """A stand-in for `worker_binary` (a shell script; `$1` is `--port=P`)."""
    path = tmp_path / "worker_binary"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_dead_or_silent_worker_fails_fast_is_stopped_and_warned(tmp_path, monkeypatch, caplog):
    from tfkit.federated import runtime, workers

    before = list(workers._LIVE)  # workers other tests in this process left for exit
    monkeypatch.setattr(workers, "worker_binary_path",
                        lambda: _fake_binary(tmp_path, "exit 3"))
    t0 = time.time()
    with caplog.at_level("WARNING", logger="tfkit.federated.workers"), \
            pytest.raises(RuntimeError, match="exited with code 3"):
        runtime.start_worker(log_dir=tmp_path, bind=None)  # every interface: warned
    assert time.time() - t0 < 10  # not the 60 s ready timeout
    assert "ALL interfaces" in caplog.text and "port" in caplog.text
    assert workers._LIVE == before  # the failed worker is not kept for exit

    monkeypatch.setattr(workers, "worker_binary_path",
                        lambda: _fake_binary(tmp_path, "exec sleep 60"))  # never answers gRPC
    with pytest.raises(RuntimeError, match="no TFF worker answered"):
        runtime.start_worker(log_dir=tmp_path, timeout=1.0)
    assert workers._LIVE == before  # stopped, not left running until exit
    assert not any(b"sleep" in _cmdline(p) for p in _children())


def _children() -> list[int]:
    with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
        return [int(p) for p in f.read().split()]


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def test_serve_worker_exits_zero_when_stopped(tmp_path):
    fake = _fake_binary(tmp_path, "exec sleep 60")  # dies of SIGINT like worker_binary
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from tfkit.federated import serve, workers
        workers.worker_binary_path = lambda: Path({str(fake)!r})
        sys.exit(serve.serve_worker(12345))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert "all interfaces" in proc.stdout.readline().lower()
    time.sleep(1.0)  # the worker is started and the handlers installed
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0  # was 254: the worker's -SIGINT status


@pytest.mark.skipif(not CAN_BIND, reason="the bind shim needs Linux and a C compiler")
def test_served_worker_listens_on_its_bind_address_only():
    port = runtime_free_port()
    code = textwrap.dedent(f"""
        import sys
        from tfkit.federated import serve
        sys.exit(serve.serve_worker({port}, bind="127.0.0.1"))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert f"127.0.0.1:{port} only" in proc.stdout.readline()
        from tfkit.federated.bind import listening_addresses

        deadline = time.time() + 60
        while not listening_addresses(port) and time.time() < deadline:
            time.sleep(0.2)
        assert listening_addresses(port) == ["127.0.0.1"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def runtime_free_port() -> int:
    from tfkit.federated.runtime import free_port

    return free_port()


def test_sigterm_while_the_worker_lock_is_held_does_not_deadlock():
    code = textwrap.dedent("""
        import os, signal
        from tfkit.federated import workers
        workers._install_handlers()
        with workers._LOCK:  # e.g. start_worker registering a worker when SIGTERM arrives
            os.kill(os.getpid(), signal.SIGTERM)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]


@pytest.mark.skipif(not CAN_BIND, reason="the bind shim needs Linux and a C compiler")
def test_start_worker_builds_the_bind_env_once(tmp_path, monkeypatch):
    from tfkit.federated import runtime, workers

    calls = []

    def counting_bind_env(address, env=None):
        calls.append(address)
        return runtime_bind_env(address, env)

    from tfkit.federated.bind import bind_env as runtime_bind_env

    monkeypatch.setattr(workers, "bind_env", counting_bind_env)
    monkeypatch.setattr(workers, "worker_binary_path", lambda: _fake_binary(tmp_path, "exit 3"))
    with pytest.raises(RuntimeError, match="exited with code 3"):
        runtime.start_worker(log_dir=tmp_path)
    assert calls == ["127.0.0.1"]


@pytest.mark.skipif(not CAN_BIND, reason="the bind shim needs Linux and a C compiler")
def test_served_worker_that_cannot_bind_is_an_error_not_exit_zero():
    code = textwrap.dedent(f"""
        import sys
        from tfkit.cli import main
        sys.exit(main(["fedmd", "worker", "--port", "{runtime_free_port()}",
                       "--bind", "192.0.2.1"]))  # TEST-NET: not an address of this host
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]  # was 0: the worker's own exit code
    assert "exited by itself" in proc.stderr and "address of this host" in proc.stderr


def test_served_worker_on_a_port_in_use_is_an_error_not_exit_zero():
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        code = textwrap.dedent(f"""
            import sys
            from tfkit.cli import main
            sys.exit(main(["fedmd", "worker", "--port", "{taken.getsockname()[1]}"]))
        """)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]  # was 0
    assert "exited by itself" in proc.stderr and "port free" in proc.stderr


def test_a_worker_logs_tensorflow_errors_even_under_the_quiet_cli(tmp_path, monkeypatch):
    from tfkit.federated import runtime, workers

    # the CLI sets TF_CPP_MIN_LOG_LEVEL=3 for its own output; the worker's log keeps errors
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    script = 'echo "level=$TF_CPP_MIN_LOG_LEVEL"; exit 3'
    monkeypatch.setattr(workers, "worker_binary_path", lambda: _fake_binary(tmp_path, script))
    with pytest.raises(RuntimeError, match="exited with code 3"):
        runtime.start_worker(log_dir=tmp_path, bind=None)
    assert "level=2" in next(tmp_path.glob("tfkit_worker_*.log")).read_text()
