"""What every bench scenario provides.

Why: bench/run knows nothing about IMAP, HTTP or sockets; it starts a
scenario's server once, puts every target (direct, nodelayd, peers) in front
of it and calls run_once() interleaved across targets.  A new scenario
(throughput, ping-pong latency, wrk, ...) is one module with one subclass,
listed in scenarios/__init__.py.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager, Iterator

from kit.endpoint import Endpoint


class Scenario:
    name = "?"               # short id used on the command line
    title = "?"              # one line for the report
    unit = "?"               # unit of run_once()'s value
    higher_is_better = False
    run_timeout = 120.0      # hard bound on one run_once(), seconds

    def __init__(self, quick: bool):
        self.quick = quick

    def describe(self) -> str:
        """The workload parameters, for the report."""
        return ""

    def server(self) -> ContextManager[tuple[str, int]]:
        """Start the backend; yield its (host, port)."""
        raise NotImplementedError

    def run_once(self, ep: Endpoint) -> float:
        """One measurement through `ep`; raise if the result is wrong."""
        raise NotImplementedError

    def warmup(self, ep: Endpoint) -> None:
        """A small untimed run through `ep` before the measured ones (first
        connection, server-side process spawn, mailbox creation...)."""


@contextlib.contextmanager
def serving(server) -> Iterator[tuple[str, int]]:
    """Adapt a kit server context manager (with .host/.port) to server()."""
    with server as s:
        yield s.host, s.port
