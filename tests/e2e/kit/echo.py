"""Echo backend and a ping-pong client, for stats and latency tests.

Why: exact byte counts and round trips need a backend that answers every byte
at once (TCP_NODELAY on), with no protocol in the way.
"""

from __future__ import annotations

import socket
import statistics
import time

from .tcpserver import ThreadedServer, recv_exact


class EchoServer(ThreadedServer):
    """Echoes everything; half-closes when the client does."""

    def handle(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = conn.recv(65536)
            if not data:
                conn.shutdown(socket.SHUT_WR)
                return
            conn.sendall(data)


def ping_pong_times(host: str, port: int, rounds: int, size: int = 32,
                    timeout: float = 30.0) -> list[float]:
    """Round-trip time in seconds of each of `rounds` small echoes, in
    order, on one connection (TCP_NODELAY on)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        msg = b"p" * size
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            s.sendall(msg)
            recv_exact(s, size)
            times.append(time.perf_counter() - t0)
    return times


def paced_ping_pong(host: str, port: int, rounds: int, interval: float,
                    size: int = 32, timeout: float = 30.0) -> list[float]:
    """Like ping_pong_times(), but each round starts `interval` seconds after
    the previous one started (a steady trickle, not back to back)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        msg = b"p" * size
        times = []
        start = time.perf_counter()
        for i in range(rounds):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t0 = time.perf_counter()
            s.sendall(msg)
            recv_exact(s, size)
            times.append(time.perf_counter() - t0)
    return times


def ping_pong_p50(host: str, port: int, rounds: int, size: int = 32,
                  timeout: float = 30.0) -> float:
    """Median round-trip time in seconds of `rounds` small echoes."""
    return statistics.median(ping_pong_times(host, port, rounds, size,
                                             timeout))
