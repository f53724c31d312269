"""What every bench scenario provides.

Why: bench/run knows nothing about IMAP, HTTP or sockets; it starts a
scenario's server once, puts every target (direct, nodelayd, peers) in front
of it and calls run_once() interleaved across targets.  A new scenario
(throughput, ping-pong latency, wrk, ...) is one module with one subclass,
listed in scenarios/__init__.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import ContextManager, Iterator, Mapping, Sequence

from kit.endpoint import Endpoint


@dataclasses.dataclass(frozen=True)
class Metric:
    """One of several numbers a run measures (see Scenario.metrics)."""
    key: str                 # report name is "<scenario>-<key>"
    title: str
    unit: str
    higher_is_better: bool


class Scenario:
    name = "?"               # short id used on the command line
    title = "?"              # one line for the report
    unit = "?"               # unit of run_once()'s value
    higher_is_better = False
    run_timeout = 120.0      # hard bound on one run_once(), seconds
    # Several numbers per run (p50 and p99, one stream and four): list them
    # here and return {key: value} from run_once(); the report gets one
    # table per metric, named "<name>-<key>".  Empty: one float, described
    # by unit and higher_is_better.
    metrics: tuple[Metric, ...] = ()
    # Target variants this scenario runs too whenever plain "nodelayd" is
    # among the targets (e.g. nodelayd-upstream-nagle).
    extra_targets: tuple[str, ...] = ()
    # Targets not measured, with the reason shown in the report (not an
    # error): e.g. {"direct": "no proxy process"}.
    not_applicable: Mapping[str, str] = {}
    # Concurrent client connections every proxy must accept (limits, fd
    # counts, backlog); None: the launchers' plain configuration.
    capacity: int | None = None

    def __init__(self, quick: bool):
        self.quick = quick

    def describe(self) -> str:
        """The workload parameters, for the report."""
        return ""

    def server(self) -> ContextManager[tuple[str, int]]:
        """Start the backend; yield its (host, port)."""
        raise NotImplementedError

    def run_once(self, ep: Endpoint) -> float | dict[str, float]:
        """One measurement through `ep` (a float, or {metric key: value}
        when `metrics` is set); raise if the result is wrong."""
        raise NotImplementedError

    def note(self, target: str) -> str | None:
        """A remark on `target`'s row of the report (e.g. a smaller
        workload), or None."""
        return None

    def warmup(self, ep: Endpoint) -> None:
        """A small untimed run through `ep` before the measured ones (first
        connection, server-side process spawn, mailbox creation...)."""


def quantile(sorted_vals: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (q in [0, 1]) of a sorted, non-empty list."""
    i = min(len(sorted_vals) - 1, max(0, round(q * len(sorted_vals)) - 1))
    return sorted_vals[i]


@contextlib.contextmanager
def serving(server) -> Iterator[tuple[str, int]]:
    """Adapt a kit server context manager (with .host/.port) to server()."""
    with server as s:
        yield s.host, s.port
