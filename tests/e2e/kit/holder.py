"""Many idle connections: a backend that accepts and holds them, and a
client that opens them in batches.

Why: memory per idle connection is only measurable with thousands of them
open at once, through the proxy, to a backend that keeps every one.  A
thread per connection (tcpserver.py) would not scale to 10,000, so the
holder is one epoll loop that accepts, reads and discards whatever arrives,
and closes a connection when its peer does.  The client opens connections
in batches and waits for the holder to have each batch, so no proxy's
listen backlog overflows (a dropped SYN costs a 1 s retransmit) and the
count proves that every connection reached the backend.
"""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import struct
import threading
import time
from typing import Iterator

from .ports import LOOPBACK


@contextlib.contextmanager
def nofile_limit(at_least: int) -> Iterator[int]:
    """Raise this process's RLIMIT_NOFILE (soft, and hard when allowed, i.e.
    as root) to `at_least`; children started inside inherit it.  Yields the
    soft limit obtained; restores the old limits on exit."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft, hard = old
    if soft < at_least:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (at_least, max(hard, at_least)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, old)
        except (ValueError, OSError):
            pass


def nofile_obtainable(want: int) -> int:
    """The RLIMIT_NOFILE this process (and its children) can have: `want`,
    or less when the hard limit is lower and cannot be raised (raising it
    needs CAP_SYS_RESOURCE).  Changes nothing."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard >= want:
        return want
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, want))
    except (ValueError, OSError):
        return hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return want


class IdleHolder:
    """Context manager; attributes host, port, open (connections held now),
    accepted (in total)."""

    def __init__(self, port: int = 0, host: str = LOOPBACK,
                 backlog: int = 4096):
        self.host = host
        self._want_port = port
        self.port = 0
        self.backlog = backlog
        self.open = 0
        self.accepted = 0
        self._sel = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        self._dropped = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "IdleHolder":
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.host, self._want_port))
        ls.listen(self.backlog)
        ls.setblocking(False)
        self._listener = ls
        self.port = ls.getsockname()[1]
        self._sel.register(ls, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="IdleHolder")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping = True
        self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(10.0)
        for key in list(self._sel.get_map().values()):
            key.fileobj.close()
        self._sel.close()
        self._wake_w.close()

    def _loop(self) -> None:
        buf = bytearray(65536)
        while not self._stopping:
            for key, _ in self._sel.select(1.0):
                if key.data == "wake":
                    if self._stopping:
                        return
                    self._wake_r.recv(64)  # only drop_all wakes it otherwise
                    self._drop_conns()
                    continue
                if key.data == "listen":
                    self._accept_all(key.fileobj)
                    continue
                conn = key.fileobj
                try:
                    n = conn.recv_into(buf)
                except BlockingIOError:
                    continue
                except OSError:
                    n = 0
                if n == 0:
                    self._sel.unregister(conn)
                    conn.close()
                    self.open -= 1

    def _drop_conns(self) -> None:
        for key in list(self._sel.get_map().values()):
            if key.data == "conn":
                self._sel.unregister(key.fileobj)
                close_abortive([key.fileobj])
                self.open -= 1
        self._dropped.set()

    def drop_all(self, timeout: float = 10.0) -> int:
        """Reset every connection held now; returns how many there were.
        Why: connections a proxy failed to close (its run timed out, then it
        was stopped) would otherwise be counted against the next one."""
        held = self.open
        self._dropped.clear()
        self._wake_w.send(b"d")
        if not self._dropped.wait(timeout):
            raise TimeoutError("holder did not drop its connections")
        return held

    def _accept_all(self, ls: socket.socket) -> None:
        while True:
            try:
                conn, _ = ls.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # EMFILE and the like: retried on next wake-up
                return
            conn.setblocking(False)
            self._sel.register(conn, selectors.EVENT_READ, "conn")
            self.open += 1
            self.accepted += 1

    def wait_open(self, n: int, timeout: float) -> None:
        """Block until `n` connections are held; TimeoutError if not."""
        end = time.monotonic() + timeout
        while self.open != n:
            if time.monotonic() > end:
                raise TimeoutError(f"holder has {self.open} connections, "
                                   f"expected {n} after {timeout:.0f}s")
            time.sleep(0.005)


def open_idle(host: str, port: int, n: int, holder: IdleHolder,
              batch: int = 200, timeout: float = 60.0) -> list[socket.socket]:
    """Open `n` connections to (host, port), `batch` at a time, waiting for
    `holder` to hold each batch.  On error, the ones opened are closed."""
    socks: list[socket.socket] = []
    base = holder.open
    end = time.monotonic() + timeout
    try:
        while len(socks) < n:
            k = min(batch, n - len(socks))
            for _ in range(k):
                left = max(0.1, end - time.monotonic())
                socks.append(socket.create_connection((host, port),
                                                      timeout=left))
            holder.wait_open(base + len(socks), max(0.1,
                                                    end - time.monotonic()))
    except BaseException:
        close_abortive(socks)
        raise
    return socks


def close_abortive(socks: list[socket.socket]) -> None:
    """Close with SO_LINGER {1, 0} (RST): no TIME_WAIT left behind, so
    repeated runs do not use up loopback's ephemeral ports."""
    linger = struct.pack("ii", 1, 0)
    for s in socks:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        except OSError:
            pass
        s.close()
    socks.clear()
