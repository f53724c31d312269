"""4-byte messages at fixed intervals, Nagle on at the client: one-way
latency (p50, p99) and segments per message on each side.

Why: telemetry, replication and terminal sessions write small messages now
and then without TCP_NODELAY.  Each message waits while the previous one is
unacknowledged, and on an interactive connection the receiver delays its
ACK by up to ~40 ms when it has nothing to send: messages are held and
leave merged.  The server here answers every 10th message with 4 bytes (an
application-level acknowledgement), which makes the connection interactive
-- a server that never answers gets its small segments ACKed at once by
Linux and nothing is ever held (see kit/interval.py).  A proxy that ACKs
at once and forwards with TCP_NODELAY lets every message through alone;
with Nagle on its upstream side (nodelayd-upstream-nagle) the wait moves
there.  The server stamps arrivals with the sender's clock (same machine),
so latency is one-way, not half a round trip.  Segments per message: data
segments the client's socket sent (TCP_INFO tcpi_data_segs_out) and the
server's received (tcpi_data_segs_in), divided by the messages: 1 = every
message left alone; 0.05 = twenty messages per segment, i.e. held back.
"""

from __future__ import annotations

from kit import interval
from kit.endpoint import Endpoint

from .base import Metric, Scenario, quantile, serving


class Interval(Scenario):
    name = "interval"
    title = "4-byte messages at 1 ms intervals, Nagle on at the client"
    unit = "µs"
    higher_is_better = False
    metrics = (
        Metric("p50", "median one-way latency", "µs", False),
        Metric("p99", "99th percentile one-way latency", "µs", False),
        Metric("segs-client", "client data segments per message (1 = none "
               "held back)", "segs/msg", True),
        Metric("segs-server", "data segments per message arriving at the "
               "server (1 = none held back)", "segs/msg", True),
    )
    extra_targets = ("nodelayd-upstream-nagle",)

    def __init__(self, quick: bool):
        super().__init__(quick)
        self.count = 200 if quick else 1000
        self.interval = 0.001
        self.reply_every = 10
        self.run_timeout = self.count * self.interval + 60.0
        self._run = 0
        self._sink: interval.TimestampSink | None = None

    def describe(self) -> str:
        return (f"{self.count} messages of 4 B, one every "
                f"{self.interval * 1e3:g} ms on one connection (client Nagle "
                f"on), to a server that timestamps them and answers every "
                f"{self.reply_every}th with 4 B; "
                "latency = arrival − send (one clock); segments per message "
                "from TCP_INFO of the client and server sockets")

    def server(self):
        self._sink = interval.TimestampSink(reply_every=self.reply_every)
        return serving(self._sink)

    def _send(self, ep: Endpoint, count: int):
        assert self._sink is not None
        self._run += 1
        return interval.run_client(ep.host, ep.port, self._sink, self._run,
                                   count, self.interval,
                                   timeout=self.run_timeout - 5)

    def run_once(self, ep: Endpoint) -> dict[str, float]:
        lat, segs_out, segs_in = self._send(ep, self.count)
        lat.sort()
        if lat[0] < 0:
            raise RuntimeError(f"negative latency {lat[0]}")
        return {"p50": quantile(lat, 0.50) * 1e6,
                "p99": quantile(lat, 0.99) * 1e6,
                "segs-client": segs_out / self.count,
                "segs-server": segs_in / self.count}

    def warmup(self, ep: Endpoint) -> None:
        self._send(ep, 20)


SCENARIO = Interval
