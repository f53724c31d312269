"""iperf3 server and client: bulk TCP throughput through a target.

Why: bulk relay speed is measured with the tool everybody uses, not with a
Python loop that would be the bottleneck itself.  One iperf3 server runs on
a loopback port for the whole scenario (it serves one test at a time, which
is how the bench runs them); a test's control connection and its data
connections all go to that one port, so they pass through any TCP proxy.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import time

from .ports import LOOPBACK, free_port, open_connections, wait_listening
from .procs import Proc
from .tmpdirs import private_dir

IPERF3 = "iperf3"


def available() -> bool:
    return shutil.which(IPERF3) is not None


class IperfServer:
    """Context manager; attributes host, port, proc."""

    def __init__(self, port: int = 0, host: str = LOOPBACK):
        self.host = host
        self.port = port or free_port(host)
        self.proc: Proc | None = None
        self._dir = None

    def __enter__(self) -> "IperfServer":
        if not available():
            raise RuntimeError("iperf3 not installed "
                               "(scripts/install-deps --bench)")
        self._dir = private_dir("iperf3")
        d = self._dir.__enter__()
        try:
            self.proc = Proc([IPERF3, "-s", "-B", self.host, "-p",
                              str(self.port)], name="iperf3-server",
                             log_path=os.path.join(d, "iperf3.log")).start()
            wait_listening(self.port, 10.0, self.proc.popen, "iperf3 -s")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until the server has closed every connection of its last
        test; RuntimeError after `timeout` seconds.

        Why: the client has its results a moment before a proxy has relayed
        its close, and bench/run pauses (SIGSTOP) a proxy as soon as its run
        returns; a paused proxy that still held the test's connections (socat's
        per-connection child, seen 5 times in 40) kept the server in that test,
        and it answered every other target "busy" until the proxy ran again."""
        end = time.monotonic() + timeout
        while open_connections(self.port):
            if time.monotonic() > end:
                raise RuntimeError(f"iperf3 server still holds "
                                   f"{open_connections(self.port)} connection(s) "
                                   f"{timeout:g}s after the test ended")
            time.sleep(0.01)

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.stop()
        if self._dir is not None:
            self._dir.__exit__(None, None, None)
            self._dir = None


@dataclasses.dataclass
class Result:
    sent_bytes: int
    received_bytes: int
    seconds: float          # as measured by the receiving side
    gbit_per_s: float       # received bits per second / 1e9
    raw: dict


def run(host: str, port: int, seconds: int | None = None,
        nbytes: int | None = None, streams: int = 1,
        timeout: float = 60.0, busy_wait: float = 10.0,
        server: IperfServer | None = None) -> Result:
    """One iperf3 client test (client sends, server receives).

    Either `seconds` (whole seconds, iperf3's -t) or `nbytes` (-n).  Raises
    if iperf3 fails or reports an error.  The server serves one test at a
    time and may still be closing the previous one (its connections through
    a proxy close a moment after the client has its results): "server is
    busy" is retried for up to `busy_wait` seconds, before anything was
    measured.  Given the `server`, returns once it has closed the test's
    connections (IperfServer.wait_idle)."""
    end = time.monotonic() + busy_wait
    while True:
        try:
            r = _run_once(host, port, seconds, nbytes, streams, timeout)
            if server is not None:
                server.wait_idle()
            return r
        except _Busy:
            if time.monotonic() > end:
                raise RuntimeError(f"iperf3 server still busy after "
                                   f"{busy_wait:g}s") from None
            time.sleep(0.1)


class _Busy(Exception):
    pass


def _run_once(host: str, port: int, seconds: int | None,
              nbytes: int | None, streams: int, timeout: float) -> Result:
    if not available():
        raise RuntimeError("iperf3 not installed (scripts/install-deps --bench)")
    argv = [IPERF3, "-c", host, "-p", str(port), "--json", "-P", str(streams)]
    if nbytes is not None:
        argv += ["-n", str(nbytes)]
    else:
        argv += ["-t", str(seconds or 1)]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, check=False)
    try:
        d = json.loads(p.stdout.decode("utf-8", "replace"))
    except ValueError:
        raise RuntimeError(f"iperf3 exited {p.returncode}, no JSON: "
                           f"{p.stdout[-300:]!r} {p.stderr[-300:]!r}") from None
    if "busy" in str(d.get("error", "")):
        raise _Busy()
    if p.returncode != 0 or "error" in d:
        raise RuntimeError(f"iperf3 exited {p.returncode}: "
                           f"{d.get('error', p.stderr.decode()[-300:])}")
    end = d["end"]
    rcv, snd = end["sum_received"], end["sum_sent"]
    if streams != len(end.get("streams", [])):
        raise RuntimeError(f"iperf3 ran {len(end.get('streams', []))} "
                           f"streams, asked for {streams}")
    return Result(sent_bytes=int(snd["bytes"]),
                  received_bytes=int(rcv["bytes"]),
                  seconds=float(rcv["seconds"]),
                  gbit_per_s=float(rcv["bits_per_second"]) / 1e9, raw=d)
