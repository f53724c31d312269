"""(c) write-write-read rounds, microseconds per round, Nagle on both ends.

Why: the protocol-free form of the stall (two small writes, then a read);
directly on Linux loopback each round waits for two delayed ACKs.
"""

from __future__ import annotations

import statistics

from kit import wwr
from kit.endpoint import Endpoint

from .base import Scenario, serving


class WriteWriteRead(Scenario):
    name = "wwr"
    title = "write-write-read rounds, Nagle on"
    unit = "µs/round"
    higher_is_better = False

    def __init__(self, quick: bool):
        super().__init__(quick)
        self.rounds = 10 if quick else 50

    def describe(self) -> str:
        return (f"{self.rounds} rounds per run on one connection: client "
                "writes 10 B + 10 B then reads 20 B; server reads 20 B then "
                "writes 10 B + 10 B; mean per round")

    def server(self):
        return serving(wwr.WWRServer())

    def run_once(self, ep: Endpoint) -> float:
        times = wwr.run_client(ep.host, ep.port, self.rounds,
                               timeout=self.run_timeout)
        return statistics.fmean(times) * 1e6

    def warmup(self, ep: Endpoint) -> None:
        wwr.run_client(ep.host, ep.port, 2, timeout=self.run_timeout)


SCENARIO = WriteWriteRead


class WriteWriteReadBoth(WriteWriteRead):
    name = "wwr-both"
    title = "write-write-read rounds, both ends at once, Nagle on"

    def __init__(self, quick: bool):
        super().__init__(quick)
        self.rounds = 50 if quick else 200

    def describe(self) -> str:
        return (f"{self.rounds} rounds per run on one connection: client and server "
                "each write 10 B + 10 B then read 20 B, in phase (issue 2's round); "
                "mean per round")

    def server(self):
        return serving(wwr.WWRServer(symmetric=True))

    def run_once(self, ep: Endpoint) -> float:
        times = wwr.run_client(ep.host, ep.port, self.rounds,
                               timeout=self.run_timeout, symmetric=True)
        return statistics.fmean(times) * 1e6

    def warmup(self, ep: Endpoint) -> None:
        wwr.run_client(ep.host, ep.port, 2, timeout=self.run_timeout,
                       symmetric=True)
