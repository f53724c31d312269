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
    maxconn 4096

defaults
    mode tcp
    timeout connect 5s
    timeout client 600s
    timeout server 600s

listen nodelayd_peer
    bind {host}:{port}
    server upstream {up_host}:{up_port}
"""


class HAProxy:
    name = "haproxy"
    binary = HAPROXY

    @contextlib.contextmanager
    def start(self, listen_port: int, upstream_host: str,
              upstream_port: int) -> Iterator[Endpoint]:
        port = listen_port or free_port()
        up = f"[{upstream_host}]" if ":" in upstream_host else upstream_host
        with private_dir("haproxy") as d:
            cfg = os.path.join(d, "haproxy.cfg")
            with open(cfg, "w", encoding="utf-8") as f:
                f.write(_CFG.format(host=LOOPBACK, port=port, up_host=up,
                                    up_port=upstream_port))
            with Proc([HAPROXY, "-f", cfg, "-db"], name="haproxy",
                      log_path=os.path.join(d, "haproxy.log")) as proc:
                wait_listening(port, 10.0, proc.popen, "haproxy")
                yield Endpoint(self.name, LOOPBACK, port, proc)
