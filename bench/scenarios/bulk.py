"""Bulk throughput with iperf3: one stream and four, Gbit/s.

Why: a proxy in front of file transfers, backups or replication is judged
by how much of the direct rate it keeps.  iperf3 (C) sends as fast as the
path takes; client, proxy and server share the machine's CPUs, as in the
issue's measurements, so a proxy's cost per byte shows as lost throughput.
"""

from __future__ import annotations

from kit import iperf
from kit.endpoint import Endpoint

from .base import Metric, Scenario, serving


class Bulk(Scenario):
    name = "bulk"
    title = "iperf3 bulk throughput"
    extra_targets = ("nodelayd-nosplice",)
    unit = "Gbit/s"
    higher_is_better = True
    metrics = (Metric("1", "one stream", "Gbit/s", True),
               Metric("4", "four streams (-P 4)", "Gbit/s", True))

    def __init__(self, quick: bool):
        super().__init__(quick)
        self.seconds = 1 if quick else 3
        self.run_timeout = 2 * self.seconds + 60.0
        self._iperf: iperf.IperfServer | None = None

    def describe(self) -> str:
        return (f"iperf3 client → target → iperf3 server, {self.seconds} s "
                "with one stream, then with four (-P 4); rate received by the "
                "server")

    def server(self):
        self._iperf = iperf.IperfServer()
        return serving(self._iperf)

    def run_once(self, ep: Endpoint) -> dict[str, float]:
        out = {}
        for streams in (1, 4):
            r = iperf.run(ep.host, ep.port, seconds=self.seconds,
                          streams=streams, timeout=self.seconds + 30,
                          server=self._iperf)
            if r.received_bytes <= 0:
                raise RuntimeError(f"iperf3 -P {streams}: nothing received")
            out[str(streams)] = r.gbit_per_s
        return out

    def warmup(self, ep: Endpoint) -> None:
        iperf.run(ep.host, ep.port, nbytes=16 << 20, streams=1, timeout=30,
                  server=self._iperf)


SCENARIO = Bulk
