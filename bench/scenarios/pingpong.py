"""Small-message ping-pong: the latency a proxy adds to every round trip,
median (p50) and tail (p99).

Why: interactive protocols pay the proxy's per-message cost twice per round
trip; this is the number to compare against direct (and, with the
nodelayd-nostats target, the cost of nodelayd's own measurements).  The tail
shows what a median hides: a wake-up that comes late, a batch that waits.
"""

from __future__ import annotations

from kit import echo
from kit.endpoint import Endpoint

from .base import Metric, Scenario, quantile, serving


class PingPong(Scenario):
    name = "pingpong"
    title = "32-byte ping-pong round trip"
    extra_targets = ("nodelayd-noquickack", "nodelayd-nobusypoll",
                     "haproxy-busypoll")
    unit = "µs"
    higher_is_better = False
    metrics = (Metric("p50", "median round trip", "µs", False),
               Metric("p99", "99th percentile round trip", "µs", False))

    def __init__(self, quick: bool):
        super().__init__(quick)
        self.rounds = 500 if quick else 5000

    def describe(self) -> str:
        return (f"{self.rounds} round trips per run on one connection to an "
                "echo server (TCP_NODELAY on both ends); p50 and p99 of the "
                "run's round trips")

    def server(self):
        return serving(echo.EchoServer())

    def run_once(self, ep: Endpoint) -> dict[str, float]:
        times = sorted(echo.ping_pong_times(ep.host, ep.port, self.rounds,
                                            timeout=self.run_timeout))
        return {"p50": quantile(times, 0.50) * 1e6,
                "p99": quantile(times, 0.99) * 1e6}

    def warmup(self, ep: Endpoint) -> None:
        echo.ping_pong_times(ep.host, ep.port, 10, timeout=self.run_timeout)


SCENARIO = PingPong
