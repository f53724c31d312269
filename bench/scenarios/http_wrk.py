"""wrk against nginx through each target: keep-alive and one request per
connection, requests per second.

Why: the most common thing put behind a TCP proxy is an HTTP server.  With
keep-alive the proxy's per-message relay cost decides the rate; with
`Connection: close` every request is a new connection, so accepting,
connecting upstream and tearing down dominate.  wrk (2 threads), the nginx
backend (one worker) and the proxy share the machine's CPUs, as in the
issue's measurements.
"""

from __future__ import annotations

from kit import http_client, wrk
from kit.endpoint import Endpoint
from kit.nginx import Nginx

from .base import Scenario

BODY = bytes((i * 7 + 13) % 94 + 32 for i in range(100))


class _NginxFiles:
    """server() for both: nginx serving BODY at /small."""

    def __init__(self):
        self._n = Nginx(files={"/small": BODY})

    def __enter__(self):
        n = self._n.__enter__()
        return n.host, n.http_port

    def __exit__(self, *exc):
        self._n.__exit__(*exc)


class HttpKeepAlive(Scenario):
    name = "http-keepalive"
    title = "wrk to nginx, keep-alive"
    extra_targets = ("nodelayd-noquickack", "nodelayd-nobusypoll",
                     "haproxy-busypoll")
    unit = "req/s"
    higher_is_better = True
    connections = 50
    headers: tuple[str, ...] = ()

    def __init__(self, quick: bool):
        super().__init__(quick)
        self.seconds = 1 if quick else 5
        self.run_timeout = self.seconds + 60.0

    def describe(self) -> str:
        how = ("`Connection: close` (one request per connection)"
               if self.headers else "keep-alive")
        return (f"wrk -t2 -c{self.connections} -d{self.seconds}s, {how}, "
                f"GET of a {len(BODY)} B file from nginx (1 worker)")

    def server(self):
        return _NginxFiles()

    def _wrk(self, ep: Endpoint, seconds: int) -> wrk.Result:
        return wrk.run(f"http://{ep.addr}/small", self.connections,
                       seconds=seconds, threads=2, headers=self.headers,
                       timeout=seconds + 30)

    def run_once(self, ep: Endpoint) -> float:
        return self._wrk(ep, self.seconds).req_per_s

    def warmup(self, ep: Endpoint) -> None:
        # A few GETs, checked byte for byte (wrk only counts responses).
        _, got = http_client.get_many(ep.host, ep.port, ["/small"] * 3,
                                      timeout=10)
        for status, _, body in got:
            if status != 200 or body != BODY:
                raise RuntimeError(f"GET /small: {status}, {len(body)} B")


class HttpClose(HttpKeepAlive):
    name = "http-close"
    title = "wrk to nginx, one request per connection"
    extra_targets = (*HttpKeepAlive.extra_targets, "nodelayd-logged")
    connections = 20
    headers = ("Connection: close",)


SCENARIO = HttpKeepAlive
