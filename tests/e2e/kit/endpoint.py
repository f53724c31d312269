"""What a proxy launcher yields: where clients connect, and what runs there.

Why: tests and bench treat direct connections, nodelayd and every peer proxy
alike, so they only need an address and, for diagnostics, the process.
"""

from __future__ import annotations

import dataclasses

from .procs import Proc


@dataclasses.dataclass
class Endpoint:
    name: str
    host: str
    port: int
    proc: Proc | None = None  # None for "direct"
    stats_url: str | None = None  # nodelayd's stats endpoint, e.g. http://127.0.0.1:9900

    @property
    def addr(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host \
            else f"{self.host}:{self.port}"
