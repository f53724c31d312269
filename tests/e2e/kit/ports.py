"""Loopback port helpers.

Why: every server and proxy the tests and benchmarks start must listen on
127.0.0.1 only, on a port nobody else uses, and the caller must know when it is
really listening before it sends traffic.  Readiness is read from
/proc/net/tcp{,6} instead of probing with connect(), so a probe never becomes a
session inside a proxy or a one-connection test server.
"""

from __future__ import annotations

import socket
import subprocess
import time
from typing import Iterator

LOOPBACK = "127.0.0.1"
_TCP_LISTEN = "0A"
_TCP_OPEN = ("01", "08")  # ESTABLISHED, CLOSE_WAIT


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on `host` that was free a moment ago."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _tcp_sockets() -> Iterator[list[str]]:
    """The fields of every row of /proc/net/tcp and /proc/net/tcp6 (this
    network namespace): [1] local address:port (hex), [3] state, [9] inode."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path, encoding="ascii") as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 9:
                        yield fields
        except FileNotFoundError:
            continue


def _local_port(fields: list[str]) -> int:
    return int(fields[1].rsplit(":", 1)[1], 16)


def listening_ports() -> set[int]:
    """Ports with a socket in LISTEN state in this network namespace."""
    return {_local_port(f) for f in _tcp_sockets() if f[3] == _TCP_LISTEN}


def listening_inodes() -> set[int]:
    """Inodes of the sockets in LISTEN state (as in /proc/PID/fd's
    `socket:[INODE]` links)."""
    return {int(f[9]) for f in _tcp_sockets() if f[3] == _TCP_LISTEN}


def open_connections(port: int) -> int:
    """Connections accepted on local `port` that its server has not closed
    yet (ESTABLISHED, or CLOSE_WAIT: the peer's FIN read, its own not sent)."""
    return sum(1 for f in _tcp_sockets()
               if f[3] in _TCP_OPEN and _local_port(f) == port)


def wait_listening(port: int, timeout: float = 10.0,
                   proc: subprocess.Popen | None = None,
                   what: str = "server") -> None:
    """Block until something listens on `port`.

    Raises RuntimeError if `proc` exits first or `timeout` seconds pass.
    """
    deadline = time.monotonic() + timeout
    while True:
        if port in listening_ports():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} "
                               f"before listening on port {port}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not listening on port {port} "
                               f"after {timeout:.1f}s")
        time.sleep(0.02)
