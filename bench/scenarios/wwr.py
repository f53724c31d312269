"""(c) write-write-read rounds, microseconds per round: Nagle on both ends
(wwr, wwr-both) and off (wwr-nodelay).

Why: the protocol-free form of the stall (two small writes, then a read);
directly on Linux loopback each round waits for two delayed ACKs.  With
TCP_NODELAY on both ends there is no stall to remove, and the round shows
what the proxy's two extra hops cost.
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
    symmetric = False        # server runs the client's cycle, in phase
    nodelay = False          # TCP_NODELAY on the client and the server
    rounds_full, rounds_quick = 50, 10

    def __init__(self, quick: bool):
        super().__init__(quick)
        self.rounds = self.rounds_quick if quick else self.rounds_full

    def describe(self) -> str:
        cycle = ("client and server each write 10 B + 10 B then read 20 B, "
                 "in phase (issue 2's round)" if self.symmetric else
                 "client writes 10 B + 10 B then reads 20 B; server reads "
                 "20 B then writes 10 B + 10 B")
        nagle = ("TCP_NODELAY on the client and the server" if self.nodelay
                 else "Nagle on both ends")
        return (f"{self.rounds} rounds per run on one connection, {nagle}: "
                f"{cycle}; mean per round")

    def server(self):
        return serving(wwr.WWRServer(nodelay=self.nodelay,
                                     symmetric=self.symmetric))

    def _rounds(self, ep: Endpoint, rounds: int) -> list[float]:
        return wwr.run_client(ep.host, ep.port, rounds, nodelay=self.nodelay,
                              timeout=self.run_timeout,
                              symmetric=self.symmetric)

    def run_once(self, ep: Endpoint) -> float:
        return statistics.fmean(self._rounds(ep, self.rounds)) * 1e6

    def warmup(self, ep: Endpoint) -> None:
        self._rounds(ep, 2)


SCENARIO = WriteWriteRead


class WriteWriteReadBoth(WriteWriteRead):
    name = "wwr-both"
    title = "write-write-read rounds, both ends at once, Nagle on"
    symmetric = True
    rounds_full, rounds_quick = 200, 50


class WriteWriteReadNoDelay(WriteWriteRead):
    name = "wwr-nodelay"
    title = "write-write-read rounds, Nagle off (TCP_NODELAY on both ends)"
    nodelay = True
    rounds_full, rounds_quick = 2000, 500
