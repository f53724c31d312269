"""(b) curl, 50 keep-alive GETs to the split-write backend, total ms.

Why: the server-side stall -- headers and body in two send() calls with
Nagle on wait for the ACK of the headers, which curl delays ~40 ms.  One curl
process fetches the URL 50 times on one connection; the time includes curl's
start-up, the same for every target.
"""

from __future__ import annotations

from kit import http_client
from kit.endpoint import Endpoint
from kit.splitwrite import DEFAULT_BODY, SplitWriteHTTP

from .base import Scenario, serving


class HttpSplitWrite(Scenario):
    name = "http"
    title = "curl keep-alive GETs, split-write backend"
    unit = "ms"
    higher_is_better = False

    def __init__(self, quick: bool):
        super().__init__(quick)
        self.gets = 50

    def describe(self) -> str:
        return (f"one curl process, {self.gets} GETs on one connection, "
                f"{len(DEFAULT_BODY)} B body written after the headers by a "
                "second send(), Nagle on")

    def server(self):
        return serving(SplitWriteHTTP())

    def _curl(self, ep: Endpoint, gets: int) -> float:
        secs, connects, size = http_client.curl_many(
            f"http://{ep.addr}/", gets, timeout=self.run_timeout)
        if connects != 1:
            raise RuntimeError(f"curl opened {connects} connections, not 1")
        if size != gets * len(DEFAULT_BODY):
            raise RuntimeError(f"curl got {size} bytes, expected "
                               f"{gets * len(DEFAULT_BODY)}")
        return secs

    def run_once(self, ep: Endpoint) -> float:
        return self._curl(ep, self.gets) * 1000.0

    def warmup(self, ep: Endpoint) -> None:
        self._curl(ep, 2)


SCENARIO = HttpSplitWrite
