"""Minimal threaded TCP server base for the kit's Python test backends.

Why: the split-write HTTP backend and the write-write-read server need exact
control of every send() (so no buffering framework), a thread per connection,
and a stop that really ends: closing the listener and shutting down every
open connection so no handler thread is left blocked in recv().
"""

from __future__ import annotations

import socket
import threading

from .ports import LOOPBACK


def recv_exact(s: socket.socket, n: int) -> bytes:
    """Exactly n bytes from s, or EOFError if the peer closes first."""
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"peer closed after {len(buf)}/{n} bytes")
        buf += chunk
    return bytes(buf)


class ThreadedServer:
    """Subclasses implement handle(conn); use as a context manager."""

    def __init__(self, port: int = 0, host: str = LOOPBACK):
        self.host = host
        self._want_port = port
        self.port = 0
        self.lock = threading.Lock()
        self.connections = 0
        self.errors: list[BaseException] = []
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._stopping = False

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def __enter__(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.host, self._want_port))
        ls.listen(128)
        self._listener = ls
        self.port = ls.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, daemon=True,
                             name=f"{type(self).__name__}-accept")
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc) -> None:
        self._stopping = True
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(5.0)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self._conns.add(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                 name=f"{type(self).__name__}-conn")
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except OSError as e:
            if not self._stopping:
                self.errors.append(e)
        except BaseException as e:  # surfaced to tests via .errors
            self.errors.append(e)
        finally:
            with self.lock:
                self._conns.discard(conn)
            conn.close()
