"""Small messages at fixed intervals: one-way latency and segments per
message.

Why: a client that sends a few bytes every millisecond with Nagle on (the
default) is held back whenever its previous message is not yet ACKed, and
a receiver delays that ACK by ~40 ms when the connection is interactive
(Linux's "pingpong" mode: it sent data shortly after receiving) and it has
nothing to send right now: messages wait and leave merged.  The sink stamps
every message on arrival with the same monotonic clock the sender uses (one
machine, one CLOCK_MONOTONIC), so latency is one-way; it records how many
data segments its socket received, and the sender how many it sent.
Message = 4 bytes, big-endian (run id << 16 | sequence number), so runs
never mix.

reply_every=K makes the sink answer every K-th message with 4 bytes (an
application-level acknowledgement, as replication or telemetry protocols
send): that makes the connection interactive, so the receiver's ACKs are
delayed in between.  With reply_every=0 the sink only reads; Linux then
ACKs each small segment as soon as the reader drains it, and nothing is
held back anywhere.
"""

from __future__ import annotations

import socket
import threading
import time

from .tcpinfo import tcp_info
from .tcpserver import ThreadedServer

MSG = 4


class TimestampSink(ThreadedServer):
    """Context manager.  arrivals: message id -> time.monotonic_ns() at
    which it was read; segs_in: run id -> tcpi_data_segs_in of the server
    socket once the peer closed.  reply_every: see the module docstring."""

    def __init__(self, port: int = 0, reply_every: int = 0):
        super().__init__(port=port)
        self.reply_every = reply_every
        self.arrivals: dict[int, int] = {}
        self.segs_in: dict[int, int] = {}
        self.cond = threading.Condition()

    def handle(self, conn: socket.socket) -> None:
        buf = b""
        run = None
        got = 0
        while True:
            data = conn.recv(65536)
            now = time.monotonic_ns()
            if not data:
                break
            buf += data
            n = len(buf) - len(buf) % MSG
            with self.cond:
                for i in range(0, n, MSG):
                    mid = int.from_bytes(buf[i:i + MSG], "big")
                    self.arrivals[mid] = now
                    run = mid >> 16
                self.cond.notify_all()
            buf = buf[n:]
            if self.reply_every:
                acks = (got + n // MSG) // self.reply_every \
                    - got // self.reply_every
                if acks:
                    conn.sendall(b"A" * (MSG * acks))
            got += n // MSG
        if run is not None:
            segs = tcp_info(conn).data_segs_in
            with self.cond:
                self.segs_in[run] = segs
                self.cond.notify_all()

    def wait_for(self, pred, timeout: float, what: str) -> None:
        with self.cond:
            if not self.cond.wait_for(pred, timeout):
                raise TimeoutError(f"sink: {what} after {timeout:.1f}s")


def run_client(host: str, port: int, sink: TimestampSink, run_id: int,
               count: int, interval: float,
               timeout: float = 30.0) -> tuple[list[float], int, int]:
    """Send `count` messages, one every `interval` seconds (on a fixed
    schedule, Nagle on), to a TimestampSink behind (host, port).

    Returns (one-way latency of each message in seconds, data segments the
    client sent, data segments the sink received)."""
    if count >= 1 << 16:
        raise ValueError("at most 65535 messages per run")
    run_id &= 0xFFFF
    ids = [(run_id << 16) | k for k in range(count)]
    sent = [0] * count
    step = int(interval * 1e9)
    with socket.create_connection((host, port), timeout=timeout) as s:
        segs0 = tcp_info(s).data_segs_out
        t0 = time.monotonic_ns() + step
        for k, mid in enumerate(ids):
            delay = t0 + k * step - time.monotonic_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
            sent[k] = time.monotonic_ns()
            s.sendall(mid.to_bytes(MSG, "big"))
        sink.wait_for(lambda: all(i in sink.arrivals for i in ids), timeout,
                      f"not every message of run {run_id} arrived")
        segs_out = tcp_info(s).data_segs_out - segs0
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):  # the sink's acknowledgements, if any
            pass
    sink.wait_for(lambda: run_id in sink.segs_in, timeout,
                  f"run {run_id}'s connection did not close")
    with sink.cond:
        lat = [(sink.arrivals.pop(mid) - t) / 1e9 for mid, t in zip(ids, sent)]
        segs_in = sink.segs_in.pop(run_id)
    return lat, segs_out, segs_in
