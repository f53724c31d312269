"""Memory per idle connection: N connections held open through the
target, the proxy's process memory before and after, KiB per connection.

Why: a proxy in front of IMAP, MQTT or WebSocket servers mostly holds idle
connections, and what each costs decides how many fit.  The backend is an
epoll loop that accepts and holds (kit.holder); the client opens the
connections in batches and waits until the backend holds every one, so
each counted connection is a complete client-proxy-server path.  Memory is
PSS summed over all the proxy's processes (nginx master and worker,
socat's fork per connection; kit.procstat), against the proxy's own
memory before its first connection.  Kernel socket memory is not in it
(every proxy holds the same two sockets per connection).
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

from kit import holder, procstat
from kit.endpoint import Endpoint

from .base import Metric, Scenario


class IdleMemory(Scenario):
    name = "idle-memory"
    title = "process memory per idle connection"
    unit = "KiB/conn"
    higher_is_better = False
    metrics = (
        Metric("pss", "PSS per connection (shared pages split among "
               "processes)", "KiB/conn", False),
        Metric("rss", "RSS per connection (every process's shared pages "
               "counted again)", "KiB/conn", False),
    )
    not_applicable = {"direct": "no proxy process"}

    def __init__(self, quick: bool):
        super().__init__(quick)
        self.wanted = 2000 if quick else 10000
        # A proxy holds two descriptors per connection, and so does this
        # process (client end + backend end): without CAP_SYS_RESOURCE the
        # hard RLIMIT_NOFILE caps the count (20,000 -> 9,800).
        self.nofile = holder.nofile_obtainable(2 * self.wanted + 4096)
        self.count = min(self.wanted, (self.nofile - 256) // 2 // 100 * 100)
        self.capacity = self.count
        self.run_timeout = 180.0
        self._holder: holder.IdleHolder | None = None
        self._base: dict[int, procstat.Memory] = {}  # pid -> before first
        self._procs: dict[int, int] = {}  # pid -> process count when idle

    def describe(self) -> str:
        capped = "" if self.count == self.wanted else (
            f" ({self.wanted:,} wanted; the RLIMIT_NOFILE hard limit "
            f"{self.nofile:,} allows no more at two descriptors per "
            "connection)")
        return (f"{self.count:,} idle connections{capped} opened through "
                "the target "
                "(200 at a time, each held by the backend) and kept open; "
                "memory of all the proxy's processes (/proc/PID/smaps_rollup) "
                "with them open minus before its first connection, divided "
                "by the connections")

    @contextlib.contextmanager
    def server(self) -> Iterator[tuple[str, int]]:
        # The bench process holds both ends' sockets of the backend side and
        # the clients (2N); proxies started inside inherit the limit and need
        # 2N as well.
        with holder.nofile_limit(self.nofile) as got:
            if got < 2 * self.count + 256:
                raise RuntimeError(f"RLIMIT_NOFILE {got} is too low for "
                                   f"{self.count} connections")
            with holder.IdleHolder() as h:
                self._holder = h
                yield h.host, h.port

    def _settle(self, ep: Endpoint, timeout: float = 30.0) -> None:
        """Wait until the backend holds nothing and the proxy is back to
        its idle processes (socat's children have exited)."""
        assert self._holder is not None and ep.proc is not None
        self._holder.wait_open(0, timeout)
        end = time.monotonic() + timeout
        want = self._procs.get(ep.proc.pid)
        while (want is not None
               and len(procstat.session_pids(ep.proc.pid)) > want):
            if time.monotonic() > end:
                raise TimeoutError(f"{ep.name} still has more processes "
                                   f"than {want} after {timeout:.0f}s")
            time.sleep(0.05)

    def _hold(self, ep: Endpoint, n: int) -> procstat.Memory:
        """Open n connections, measure the proxy, close them."""
        assert self._holder is not None and ep.proc is not None
        try:
            socks = holder.open_idle(ep.host, ep.port, n, self._holder,
                                     timeout=self.run_timeout - 60)
            try:
                time.sleep(0.3)  # let lazy allocations and forks finish
                mem = procstat.session_memory(ep.proc.pid)
            finally:
                holder.close_abortive(socks)
            self._settle(ep)
        except BaseException:
            # While the failed target is stopped, the backend connections it
            # did not close would count against every target after it (one
            # socat run left 183, and each later run failed on them): reset
            # them, so the next run, this target's retry too, starts from 0.
            self._holder.drop_all()
            raise
        return mem

    def run_once(self, ep: Endpoint) -> dict[str, float]:
        assert ep.proc is not None
        base = self._base[ep.proc.pid]
        mem = self._hold(ep, self.count)
        return {"pss": (mem.pss_kib - base.pss_kib) / self.count,
                "rss": (mem.rss_kib - base.rss_kib) / self.count}

    def warmup(self, ep: Endpoint) -> None:
        assert ep.proc is not None
        pid = ep.proc.pid
        self._base[pid] = procstat.session_memory(pid)
        self._procs[pid] = len(procstat.session_pids(pid))
        self._hold(ep, 10)


SCENARIO = IdleMemory
