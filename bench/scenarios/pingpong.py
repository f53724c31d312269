"""Small-message ping-pong: the latency a proxy adds to every round trip.

Why: interactive protocols pay the proxy's per-message cost twice per round
trip; this is the number to compare against direct (and, with the
nodelayd-nostats target, the cost of nodelayd's own measurements).
"""

from __future__ import annotations

import statistics

from kit import echo
from kit.endpoint import Endpoint

from .base import Scenario, serving


class PingPong(Scenario):
    name = "pingpong"
    title = "32-byte ping-pong, median round trip"
    extra_targets = ("nodelayd-noquickack",)
    unit = "µs"
    higher_is_better = False

    def __init__(self, quick: bool):
        super().__init__(quick)
        self.rounds = 500 if quick else 5000

    def describe(self) -> str:
        return (f"{self.rounds} round trips per run on one connection to an echo server "
                "(TCP_NODELAY on both ends); median per run")

    def server(self):
        return serving(echo.EchoServer())

    def run_once(self, ep: Endpoint) -> float:
        return echo.ping_pong_p50(ep.host, ep.port, self.rounds,
                                  timeout=self.run_timeout) * 1e6

    def warmup(self, ep: Endpoint) -> None:
        echo.ping_pong_p50(ep.host, ep.port, 10, timeout=self.run_timeout)


SCENARIO = PingPong
