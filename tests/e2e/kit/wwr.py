"""Write-write-read: the textbook Nagle + delayed-ACK stall, both ends.

Why: it isolates the stall from any protocol.  Each round the client writes
10 bytes, writes 10 more, then reads 20; the server reads 20, then answers
with two 10-byte writes (the same write-write-read cycle, half a round out of
phase).  With Nagle on at both ends, each second write waits for an ACK that
the peer delays (~40 ms), i.e. ~80 ms per round directly on Linux loopback.
(If both ends wrote first, their first segments would cross and piggyback
the ACKs, which hides the stall.)  A proxy that ACKs quickly and forwards
with TCP_NODELAY brings a round down to a few tens of microseconds.
"""

from __future__ import annotations

import socket
import time

from .tcpserver import ThreadedServer, recv_exact

HALF = 10
ROUND = 2 * HALF


SERVER_HALVES = (b"S" * HALF, b"s" * HALF)


class WWRServer(ThreadedServer):
    """Context manager; serves any number of connections until EOF.

    symmetric=True: the server runs the same cycle as the client, in phase
    (write 10 B, write 10 B, read 20 B, from the moment it accepts), sending
    SERVER_HALVES each round.  This is the round of issue 2's table: directly
    the first writes cross and carry each other's ACKs, so it is fast; a relay
    that delays an ACK or splits/holds a write turns it into a 40 ms stall.
    """

    def __init__(self, port: int = 0, nodelay: bool = False,
                 symmetric: bool = False):
        super().__init__(port=port)
        self.nodelay = nodelay
        self.symmetric = symmetric

    def handle(self, conn: socket.socket) -> None:
        if self.nodelay:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while self.symmetric:
            try:
                conn.sendall(SERVER_HALVES[0])
                conn.sendall(SERVER_HALVES[1])
                recv_exact(conn, ROUND)
            except (EOFError, OSError):
                return
        while True:
            try:
                data = recv_exact(conn, ROUND)
            except EOFError:
                return
            conn.sendall(data[:HALF])
            conn.sendall(data[HALF:])


def run_client(host: str, port: int, rounds: int, nodelay: bool = False,
               timeout: float = 30.0, symmetric: bool = False) -> list[float]:
    """Run `rounds` rounds; return each round's duration in seconds.

    Every round checks the bytes: the echo (default) or, against a symmetric
    server, its SERVER_HALVES.
    """
    times: list[float] = []
    with socket.create_connection((host, port), timeout=timeout) as s:
        if nodelay:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(rounds):
            a = bytes([65 + i % 26]) * HALF
            b = bytes([97 + i % 26]) * HALF
            t0 = time.perf_counter()
            s.sendall(a)
            s.sendall(b)
            got = recv_exact(s, ROUND)
            times.append(time.perf_counter() - t0)
            if symmetric:
                if got != b"".join(SERVER_HALVES):
                    raise AssertionError(f"round {i}: got {got!r}")
            elif got != a + b:
                raise AssertionError(f"round {i}: sent {a + b!r}, got {got!r}")
    return times
