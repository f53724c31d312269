"""CPU seconds the proxy spends per GB relayed.

Why: throughput on a shared machine mixes the proxy's efficiency with how
the scheduler splits the CPUs; CPU time per byte is the cost itself, and
what decides how many cores a busy proxy needs.  iperf3 pushes a fixed
amount through one connection; the proxy's CPU time (utime + stime of all
its processes, socat's per-connection forks included) is read from /proc
before and after.
"""

from __future__ import annotations

import time

from kit import iperf, procstat
from kit.endpoint import Endpoint

from .base import Scenario, serving


class Cpu(Scenario):
    name = "cpu"
    title = "proxy CPU time per GB relayed (one stream)"
    extra_targets = ("nodelayd-nosplice",)
    unit = "s/GB"
    higher_is_better = False
    not_applicable = {"direct": "no proxy process"}

    def __init__(self, quick: bool):
        super().__init__(quick)
        self.nbytes = (512 if quick else 2048) << 20
        self.run_timeout = 120.0
        self._procs: dict[int, int] = {}  # proxy pid -> processes when idle
        self._iperf: iperf.IperfServer | None = None

    def describe(self) -> str:
        return (f"iperf3 -n {self.nbytes >> 20} MiB through one stream; CPU "
                "time (user + system) of the proxy's processes, from "
                "/proc/PID/stat, per GB (10⁹ B) sent")

    def server(self):
        self._iperf = iperf.IperfServer()
        return serving(self._iperf)

    def run_once(self, ep: Endpoint) -> float:
        assert ep.proc is not None
        sid = ep.proc.pid
        before = procstat.session_cpu_seconds(sid)
        r = iperf.run(ep.host, ep.port, nbytes=self.nbytes, streams=1,
                      timeout=self.run_timeout - 10, server=self._iperf)
        if r.sent_bytes < self.nbytes:
            raise RuntimeError(f"iperf3 sent {r.sent_bytes} of {self.nbytes}")
        # socat's child for the connection must have exited and been reaped
        # (its time then is in the parent's cutime): wait until only the
        # processes from before the run are left, briefly.
        end = time.monotonic() + 5.0
        while (len(procstat.session_pids(sid)) > self._procs.get(sid, 1)
               and time.monotonic() < end):
            time.sleep(0.02)
        after = procstat.session_cpu_seconds(sid)
        return (after - before) / (r.sent_bytes / 1e9)

    def warmup(self, ep: Endpoint) -> None:
        assert ep.proc is not None
        self._procs[ep.proc.pid] = len(procstat.session_pids(ep.proc.pid))
        iperf.run(ep.host, ep.port, nbytes=16 << 20, streams=1, timeout=30,
                  server=self._iperf)

SCENARIO = Cpu
