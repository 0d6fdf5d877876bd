"""A TFF worker started with `bind_env` listens on the requested address only."""

import importlib.util
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tfkit.federated.bind import BindError, bind_env, listening_addresses

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not (shutil.which("cc") or shutil.which("gcc")),
    reason="the bind shim needs Linux and a C compiler")


def _worker_binary() -> Path:  # without importing TFF (~20 s)
    spec = importlib.util.find_spec("tensorflow_federated")
    return Path(spec.origin).parent / "data" / "worker_binary"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address", ["0.0.0.0", "::1", "localhost", "300.1.1.1"])
def test_bad_bind_addresses_are_refused(address, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(BindError, match="IPv4"):
        bind_env(address)


def test_worker_listens_on_loopback_only(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    env = bind_env("127.0.0.1", env={"LD_PRELOAD": "", "PATH": "/usr/bin:/bin"})
    assert env["LD_PRELOAD"].endswith(".so") and Path(env["LD_PRELOAD"]).is_file()
    port = _free_port()
    proc = subprocess.Popen([str(_worker_binary()), f"--port={port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while not listening_addresses(port) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        # without the shim this would be ["*"] (every interface)
        assert listening_addresses(port) == ["127.0.0.1"]
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        proc.terminate()
        proc.wait(10)
    assert listening_addresses(port) == []
