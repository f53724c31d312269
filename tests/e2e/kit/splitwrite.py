"""HTTP/1.1 keep-alive backend that writes headers and body separately.

Why: this is the server-side half of the classic Nagle/delayed-ACK stall.
Each GET is answered with two send() calls, headers then body, with Nagle on
(no TCP_NODELAY): the body waits in the kernel until the headers are ACKed,
and a client with delayed ACKs (curl, Python http.client) ACKs only after
~40 ms.  nodelayd's upstream quick-ACK is what removes that wait.
"""

from __future__ import annotations

import socket

from .tcpserver import ThreadedServer

DEFAULT_BODY = bytes((i * 7 + 13) % 251 for i in range(1000))


class SplitWriteHTTP(ThreadedServer):
    """Context manager; every GET gets `body` (any path).  `connections`
    counts accepted connections, so tests can prove keep-alive."""

    def __init__(self, body: bytes = DEFAULT_BODY, port: int = 0,
                 nodelay: bool = False):
        super().__init__(port=port)
        self.body = body
        self.nodelay = nodelay
        self.requests = 0

    def handle(self, conn: socket.socket) -> None:
        if self.nodelay:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            close = any(l.lower().replace(b" ", b"") == b"connection:close"
                        for l in lines[1:])
            if not lines[0].startswith(b"GET "):
                conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n"
                             b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                return
            with self.lock:
                self.requests += 1
            conn.sendall(b"HTTP/1.1 200 OK\r\n"
                         b"Content-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(self.body))
            conn.sendall(self.body)
            if close:
                return
