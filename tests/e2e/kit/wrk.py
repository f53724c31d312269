"""wrk: HTTP request rate through a target, keep-alive or one request per
connection.

Why: request rate at many concurrent connections is what users compare
HTTP-fronting proxies by; wrk (C, epoll) is fast enough that the proxy,
not the client, is what the number is about.  Its text summary is parsed;
any non-2xx/3xx response or socket error beyond a small allowance fails the
run, so a broken relay cannot pass as a fast one.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from typing import Sequence

WRK = "wrk"

_REQS = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b")
_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_SOCKERR = re.compile(r"Socket errors: connect (\d+), read (\d+), "
                      r"write (\d+), timeout (\d+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def available() -> bool:
    return shutil.which(WRK) is not None


@dataclasses.dataclass
class Result:
    requests: int
    req_per_s: float
    socket_errors: dict
    non_2xx: int
    output: str


def run(url: str, connections: int, seconds: int = 5, threads: int = 2,
        headers: Sequence[str] = (), timeout: float | None = None,
        max_error_fraction: float = 0.001) -> Result:
    """Run wrk once; raise if it fails, gets a non-2xx/3xx answer, or has
    socket errors on more than `max_error_fraction` of its requests."""
    if not available():
        raise RuntimeError("wrk not installed (scripts/install-deps --bench)")
    argv = [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
            "--timeout", "5s"]
    for h in headers:
        argv += ["-H", h]
    argv.append(url)
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout or seconds + 30, check=False)
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        raise RuntimeError(f"wrk exited {p.returncode}: "
                           f"{p.stderr.decode()[-300:]} {out[-300:]}")
    m, r = _REQS.search(out), _RATE.search(out)
    if not m or not r:
        raise RuntimeError(f"wrk output not understood: {out[-500:]}")
    requests = int(m.group(1))
    e = _SOCKERR.search(out)
    errors = dict(zip(("connect", "read", "write", "timeout"),
                      (int(x) for x in e.groups()))) if e else {}
    n = _NON2XX.search(out)
    non_2xx = int(n.group(1)) if n else 0
    if requests == 0:
        raise RuntimeError(f"wrk made no request: {out[-500:]}")
    if non_2xx:
        raise RuntimeError(f"wrk got {non_2xx} non-2xx/3xx responses")
    if sum(errors.values()) > max_error_fraction * requests:
        raise RuntimeError(f"wrk socket errors {errors} in {requests} "
                           "requests")
    return Result(requests, float(r.group(1)), errors, non_2xx, out)
