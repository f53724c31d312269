"""HAProxy (2.6, mode tcp) as a peer proxy.

Why: the most common production TCP proxy; the bench compares nodelayd with
it.  One process, one thread, generous timeouts, config in a temp dir, run in
the foreground with -db so it is stopped like every other child.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from .endpoint import Endpoint
from .ports import LOOPBACK, free_port, wait_listening
from .procs import Proc
from .tmpdirs import private_dir

HAPROXY = "/usr/sbin/haproxy"

_CFG = """\
global
    nbthread 1
    maxconn {maxconn}{busy_polling}

defaults
    mode tcp{defaults_maxconn}
    timeout connect 5s
    timeout client 600s
    timeout server 600s

listen nodelayd_peer
    bind {host}:{port}
    server upstream {up_host}:{up_port}
"""


class HAProxy:
    """capacity: concurrent client connections it must accept (global and
    frontend maxconn; HAProxy sizes its fd limit from it).  Default: the
    plain config, maxconn 4096.  busy_polling: HAProxy's `busy-polling`
    (its poller never sleeps), off by default as in HAProxy itself."""

    name = "haproxy"
    binary = HAPROXY

    def __init__(self, capacity: int | None = None, busy_polling: bool = False,
                 name: str | None = None):
        self.capacity = capacity
        self.busy_polling = busy_polling
        if name:
            self.name = name

    @contextlib.contextmanager
    def start(self, listen_port: int, upstream_host: str,
              upstream_port: int) -> Iterator[Endpoint]:
        port = listen_port or free_port()
        up = f"[{upstream_host}]" if ":" in upstream_host else upstream_host
        with private_dir("haproxy") as d:
            cfg = os.path.join(d, "haproxy.cfg")
            with open(cfg, "w", encoding="utf-8") as f:
                maxconn = max(4096, (self.capacity or 0) + 64)
                f.write(_CFG.format(
                    host=LOOPBACK, port=port, up_host=up,
                    up_port=upstream_port, maxconn=maxconn,
                    busy_polling="\n    busy-polling" if self.busy_polling else "",
                    defaults_maxconn=(f"\n    maxconn {maxconn}"
                                      if self.capacity else "")))
            with Proc([HAPROXY, "-f", cfg, "-db"], name="haproxy",
                      log_path=os.path.join(d, "haproxy.log")) as proc:
                wait_listening(port, 10.0, proc.popen, "haproxy")
                yield Endpoint(self.name, LOOPBACK, port, proc)
