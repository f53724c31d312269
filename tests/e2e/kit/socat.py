"""socat as a peer proxy: the simplest forking relay, no socket tuning.

Why: it is the baseline "naive proxy" -- Nagle on, delayed ACKs on, so it
adds the stalls that nodelayd exists to remove.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from .endpoint import Endpoint
from .ports import LOOPBACK, free_port, wait_listening
from .procs import Proc

SOCAT = "socat"


class Socat:
    """capacity: when given, a listen backlog that large (socat's default
    is 5), so a burst of connects is not dropped and retried."""

    name = "socat"
    binary = SOCAT

    def __init__(self, capacity: int | None = None):
        self.capacity = capacity

    @contextlib.contextmanager
    def start(self, listen_port: int, upstream_host: str,
              upstream_port: int) -> Iterator[Endpoint]:
        port = listen_port or free_port()
        up = f"[{upstream_host}]" if ":" in upstream_host else upstream_host
        backlog = f",backlog={min(self.capacity, 4096)}" if self.capacity \
            else ""
        with Proc([SOCAT,
                   f"TCP-LISTEN:{port},bind={LOOPBACK},reuseaddr,fork{backlog}",
                   f"TCP:{up}:{upstream_port}"], name="socat") as proc:
            wait_listening(port, 10.0, proc.popen, "socat")
            yield Endpoint(self.name, LOOPBACK, port, proc)
