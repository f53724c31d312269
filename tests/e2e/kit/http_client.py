"""Keep-alive HTTP GET workloads: Python http.client and curl.

Why: both clients have delayed ACKs on their receive side (neither can turn
them off), which is what stalls a Nagle'd split-write server.  One
connection, many GETs, bodies kept so callers can check them byte for byte.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import time
from typing import Sequence


def get_many(host: str, port: int, paths: Sequence[str],
             timeout: float = 30.0) -> tuple[float, list[tuple[int, dict, bytes]]]:
    """GET every path on one keep-alive connection (http.client).

    Returns (seconds, [(status, headers, body), ...]).  Raises if the server
    closes the connection in between (http.client would reconnect silently,
    which would hide a broken keep-alive).
    """
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    out = []
    try:
        t0 = time.perf_counter()
        conn.connect()
        sock = conn.sock
        for p in paths:
            conn.request("GET", p)
            r = conn.getresponse()
            body = r.read()
            out.append((r.status, {k.lower(): v for k, v in r.getheaders()},
                        body))
            if conn.sock is not sock:
                raise RuntimeError(f"connection was not kept alive at {p}")
        elapsed = time.perf_counter() - t0
    finally:
        conn.close()
    return elapsed, out


def curl_many(url: str, count: int, timeout: float = 60.0) -> tuple[float, int, int]:
    """One curl process fetching `url` `count` times (keep-alive).

    Returns (seconds of the whole curl run, new connections made, bytes
    downloaded in total).
    """
    curl = shutil.which("curl")
    if curl is None:
        raise RuntimeError("curl not installed")
    argv = [curl, "-s", "-S", "--fail", "-w", "%{num_connects} %{size_download}\\n"]
    for _ in range(count):
        argv += ["-o", "/dev/null", url]
    t0 = time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, check=False)
    elapsed = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"curl failed ({p.returncode}): {p.stderr.decode()}")
    connects = size = 0
    for line in p.stdout.decode().split("\n"):
        if line.strip():
            c, s = line.split()
            connects += int(c)
            size += int(s)
    return elapsed, connects, size
