"""What a lightly loaded proxy costs: CPU use and round trips of 32-byte
ping-pongs sent at a steady 1,000 per second on one connection.

Why: a proxy that polls instead of sleeping (nodelayd's busy-poll window,
HAProxy's busy-polling) buys latency with CPU time, and the price shows
when traffic is light, not when the proxy is saturated anyway.  This is the
number to weigh against the ping-pong gain: the proxy's CPU time over the
run (utime + stime, /proc/PID/stat) as a percentage of one core, and the
median round trip at that rate.
"""

from __future__ import annotations

import time

from kit import echo, procstat
from kit.endpoint import Endpoint

from .base import Metric, Scenario, quantile, serving


class Trickle(Scenario):
    name = "trickle"
    title = "32-byte ping-pongs at 1,000/s"
    unit = "%"
    higher_is_better = False
    metrics = (Metric("cpu", "proxy CPU use, % of one core", "%", False),
               Metric("p50", "median round trip", "µs", False))
    extra_targets = ("nodelayd-nobusypoll", "haproxy-busypoll")
    not_applicable = {"direct": "no proxy process"}

    def __init__(self, quick: bool):
        super().__init__(quick)
        self.rounds = 1000 if quick else 3000
        self.interval = 0.001
        self.run_timeout = self.rounds * self.interval + 60.0

    def describe(self) -> str:
        return (f"{self.rounds} round trips on one connection to an echo "
                f"server, one every {self.interval * 1e3:g} ms (TCP_NODELAY "
                "on both ends); CPU time of the proxy's processes over the "
                "run, from /proc/PID/stat (10 ms ticks), per second of run")

    def server(self):
        return serving(echo.EchoServer())

    def run_once(self, ep: Endpoint) -> dict[str, float]:
        assert ep.proc is not None
        sid = ep.proc.pid
        before, t0 = procstat.session_cpu_seconds(sid), time.monotonic()
        times = sorted(echo.paced_ping_pong(ep.host, ep.port, self.rounds,
                                            self.interval,
                                            timeout=self.run_timeout - 5))
        wall = time.monotonic() - t0
        cpu = procstat.session_cpu_seconds(sid) - before
        return {"cpu": 100.0 * cpu / wall,
                "p50": quantile(times, 0.50) * 1e6}

    def warmup(self, ep: Endpoint) -> None:
        echo.paced_ping_pong(ep.host, ep.port, 20, self.interval,
                             timeout=self.run_timeout)


SCENARIO = Trickle
