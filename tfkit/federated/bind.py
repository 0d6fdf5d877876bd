"""Restrict which address a TFF `worker_binary` listens on.

TFF 0.87's `worker_binary` has one flag, `--port`, and always listens on every interface
(`[::]:PORT`) with no authentication; a graph sent to it can read and write files. tfkit starts
its workers with a small preloaded C shim (compiled once with the system C compiler into
`~/.cache/tfkit`) that rewrites the worker's wildcard `bind()` to one IPv4 address: 127.0.0.1
for local simulations, or the address of a private-network interface for a deployment
(`tfkit fedmd worker --bind 10.0.0.5`). `listening_addresses` reads back (Linux `/proc/net`)
what the process really bound, so callers can check instead of trusting the shim.

    env = bind_env("127.0.0.1")          # LD_PRELOAD + the address, for subprocess.Popen(env=)
    listening_addresses(port)            # -> ["127.0.0.1"]

Linux only (LD_PRELOAD, /proc); elsewhere `bind_env` raises `BindError`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tfkit.errors import TfkitError

__all__ = ["BindError", "bind_env", "listening_addresses", "shim_path", "WILDCARD"]

WILDCARD = "*"  # what `listening_addresses` reports for a socket bound to every interface
_ENV_VAR = "TFKIT_WORKER_BIND"

# Rewrites bind() to the wildcard address (IPv4 0.0.0.0, or IPv6 :: as gRPC uses) into a bind
# to the IPv4 address in $TFKIT_WORKER_BIND (IPv6 sockets get its v4-mapped form, so IPv4
# clients still connect). Every other bind() is passed through unchanged.
_SHIM_SOURCE = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static int (*real_bind)(int, const struct sockaddr *, socklen_t);
  if (!real_bind) real_bind = (int (*)(int, const struct sockaddr *, socklen_t))
      dlsym(RTLD_NEXT, "bind");
  const char *want = getenv("TFKIT_WORKER_BIND");
  struct in_addr v4;
  if (!addr || !want || inet_pton(AF_INET, want, &v4) != 1) return real_bind(fd, addr, len);
  if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
    struct sockaddr_in6 a;
    memcpy(&a, addr, sizeof a);
    if (IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr)) {
      memset(&a.sin6_addr, 0, sizeof a.sin6_addr);
      a.sin6_addr.s6_addr[10] = 0xff;
      a.sin6_addr.s6_addr[11] = 0xff;
      memcpy(&a.sin6_addr.s6_addr[12], &v4, 4);
      return real_bind(fd, (const struct sockaddr *)&a, sizeof a);
    }
  } else if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
    struct sockaddr_in a;
    memcpy(&a, addr, sizeof a);
    if (a.sin_addr.s_addr == htonl(INADDR_ANY)) {
      a.sin_addr = v4;
      return real_bind(fd, (const struct sockaddr *)&a, sizeof a);
    }
  }
  return real_bind(fd, addr, len);
}
"""


class BindError(TfkitError):
    """The worker cannot be restricted to the requested address on this machine."""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tfkit"


def shim_path() -> Path:
    """The compiled shim (built on first use, keyed by its source's hash)."""
    if not sys.platform.startswith("linux"):
        raise BindError(f"restricting the TFF worker's address needs Linux (LD_PRELOAD); this "
                        f"is {sys.platform}. Keep the worker's port closed with a firewall.")
    digest = hashlib.sha256(_SHIM_SOURCE.encode()).hexdigest()[:16]
    path = _cache_dir() / f"worker_bind_{digest}.so"
    if path.is_file():
        return path
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise BindError("restricting the TFF worker's address needs a C compiler (cc or gcc, "
                        "to build a 40-line bind() shim once); install one, or keep the "
                        "worker's port closed with a firewall")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        source, built = Path(tmp) / "worker_bind.c", Path(tmp) / "worker_bind.so"
        source.write_text(_SHIM_SOURCE)
        result = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(built),
                                 str(source), "-ldl"], capture_output=True, text=True)
        if result.returncode != 0:
            raise BindError(f"building the worker bind() shim with {compiler} failed: "
                            f"{result.stderr.strip()[:500]}")
        os.replace(built, path)  # atomic: concurrent builders leave one complete file
    return path


def bind_env(address: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) plus what makes a worker listen on `address` only.

    Args:
        address: an IPv4 address of this host, e.g. "127.0.0.1" or a private interface's.
        env: the environment to extend (not modified).
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise BindError(f"worker bind address must be an IPv4 address such as 127.0.0.1, "
                        f"got {address!r}") from None
    if ip.version != 4 or ip.is_unspecified:
        raise BindError(f"worker bind address must be one IPv4 address of this host (not "
                        f"{address}); leave --bind out to listen on every interface")
    out = dict(os.environ if env is None else env)
    preload = str(shim_path())
    out["LD_PRELOAD"] = " ".join(p for p in (preload, out.get("LD_PRELOAD", "")) if p)
    out[_ENV_VAR] = str(ip)
    return out


def _decode(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    # /proc/net stores each 32-bit word in host (little-endian) order
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(words)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return WILDCARD if ip.is_unspecified else str(ip)


def listening_addresses(port: int) -> list[str]:
    """The local addresses with a TCP socket listening on `port` (`WILDCARD` for every
    interface), read from /proc/net/tcp and tcp6; empty where /proc is not available."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            host, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(_decode(host))
    return sorted(set(found))
