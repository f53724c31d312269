"""Registry of targets: "direct" plus every proxy, behind one interface.

Why: a scenario is written once and run against each target; every launcher
has `name` and `start(listen_port, upstream_host, upstream_port)`, a context
manager yielding an Endpoint (listen_port 0 = pick a free loopback port).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Iterator, Sequence

from .endpoint import Endpoint
from .haproxy import HAProxy
from .nginx import NginxStream
from .nodelayd import Nodelayd
from .socat import Socat


class Direct:
    """No proxy: the client talks to the server itself."""

    name = "direct"
    binary = None

    @contextlib.contextmanager
    def start(self, listen_port: int, upstream_host: str,
              upstream_port: int) -> Iterator[Endpoint]:
        yield Endpoint(self.name, upstream_host, upstream_port)


PEERS = ("haproxy", "nginx-stream", "socat")
ALL = ("direct", "nodelayd", *PEERS)
# Not run unless asked for: nodelayd without its stats (no timestamps, no counters),
# to measure what measuring costs.
# nodelayd-upstream-nagle: --upstream-nodelay off, for scenarios that compare
# Nagle on and off on nodelayd's upstream side (they add it themselves).
# nodelayd-nosplice: --splice off, bulk bytes copied through user space (the
# bulk and cpu scenarios add it, to show what splice(2) gives).
# nodelayd-noquickack: TCP_QUICKACK re-arming off on both sides (the request
# rate and ping-pong scenarios add it, to show what the immediate ACKs cost).
# nodelayd-nobusypoll: --busy-poll off (sleeps as soon as it runs out of events).
# nodelayd-logged: --log-sessions on, nodelayd's default (the bench runs nodelayd without
# its line per session, like the peers, which are configured to log nothing): the
# connection-per-request scenario adds it, to show what the lines cost.
# haproxy-busypoll: HAProxy with `busy-polling` (its poller never sleeps), the
# peer's own answer to wake-up latency: the latency scenarios add it beside
# nodelayd's default busy-poll window.
EXTRA = ("nodelayd-nostats", "nodelayd-upstream-nagle", "nodelayd-nosplice",
         "nodelayd-noquickack", "nodelayd-nobusypoll", "nodelayd-logged",
         "haproxy-busypoll")
KNOWN = (*ALL, *EXTRA)
# Targets added at run time (bench/run --variant NAME=BINARY ARGS...): another
# nodelayd build or other flags, measured side by side with the rest.
VARIANTS: dict[str, tuple[str, list[str]]] = {}


def add_variant(name: str, binary: str, args: Sequence[str]) -> None:
    """Registers target `name`: nodelayd `binary` (empty: the default one)
    started with `args` after the common nodelayd arguments."""
    if name in KNOWN:
        raise ValueError(f"variant {name!r} would shadow a known target")
    VARIANTS[name] = (binary, list(args))


# The arguments each nodelayd target adds to the common ones.
_NODELAYD_ARGS = {
    "nodelayd": [],
    "nodelayd-nostats": ["--stats", "off"],
    "nodelayd-upstream-nagle": ["--upstream-nodelay", "off"],
    "nodelayd-nosplice": ["--splice", "off"],
    "nodelayd-noquickack": ["--client-quickack", "off", "--upstream-quickack", "off"],
    "nodelayd-nobusypoll": ["--busy-poll", "off"],
    "nodelayd-logged": ["--log-sessions", "on"],
}


def _overriding(common: Sequence[str], own: Sequence[str]) -> list[str]:
    """`common` less every option that `own` sets (with its value: `--opt V` or
    `--opt=V`), then `own`: nodelayd refuses an option given twice."""
    names = {a.split("=", 1)[0] for a in own if a.startswith("--")}
    out, skip = [], False
    for a in common:
        if skip:
            skip = False
        elif a in names:
            skip = True
        elif a.split("=", 1)[0] not in names:
            out.append(a)
    return [*out, *own]


def launcher(name: str, nodelayd_args: Sequence[str] = (),
             capacity: int | None = None):
    """Launcher for a target name from KNOWN.

    capacity: concurrent client connections the proxy must accept (the idle
    connection bench); each proxy is configured for that many (limits, fd
    counts, listen backlog).  None: each launcher's plain defaults."""
    nargs = list(nodelayd_args)
    if capacity and not any(a.startswith("--max-connections")
                            for a in nargs):
        nargs += ["--max-connections", str(capacity + 64)]
    if name == "direct":
        return Direct()
    if name in _NODELAYD_ARGS:
        return Nodelayd(_overriding(nargs, _NODELAYD_ARGS[name]), name=name)
    if name in VARIANTS:
        b, vargs = VARIANTS[name]
        return Nodelayd(_overriding(nargs, vargs), name=name, binary_path=b or None)
    if name == "haproxy":
        return HAProxy(capacity)
    if name == "haproxy-busypoll":
        return HAProxy(capacity, busy_polling=True, name=name)
    if name == "nginx-stream":
        return NginxStream(capacity)
    if name == "socat":
        return Socat(capacity)
    raise KeyError(f"unknown target {name!r}; known: {', '.join(KNOWN)}")


def missing_binary(name: str) -> str | None:
    """Why target `name` cannot run here, or None if it can."""
    b = launcher(name).binary
    if b is None:
        return None
    if os.path.sep in b:
        ok = os.path.isfile(b) and os.access(b, os.X_OK)
    else:
        ok = shutil.which(b) is not None
    return None if ok else f"{name}: binary {b} not found"
