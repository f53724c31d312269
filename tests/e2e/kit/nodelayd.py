"""Launcher for the nodelayd binary under test.

Why: tests and bench start nodelayd exactly like a peer proxy.  The binary is
$NODELAYD_BIN, else <repo>/build/nodelayd.  It may listen on port 0: the
real port is read from its `listening on HOST:PORT` stderr line, which is also
the readiness signal.  Extra CLI arguments pass through unchanged.  After the
context exits, `endpoint.proc.returncode` holds its exit status (SIGTERM must
give 0) and `endpoint.proc.lines` its last stderr lines.

A sanitizer build (ASan, UBSan, TSan, LSan) reports on stderr and may carry
on; a report must fail the test, so every nodelayd runs as a NodelaydProc,
which raises SanitizerReport once the daemon has stopped if it printed one.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Iterator, Sequence

from .endpoint import Endpoint
from .ports import LOOPBACK
from .procs import Proc

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
LISTENING_RX = re.compile(r"listening on (\[[^\]]+\]|[^\s\[\]]+):(\d+)")
STATS_RX = re.compile(r"stats endpoint at (http://\S+)")
# The first line of every ASan, UBSan, TSan and LSan report.
SANITIZER_RX = re.compile(r"ERROR: AddressSanitizer|runtime error:|"
                          r"WARNING: ThreadSanitizer|ERROR: LeakSanitizer")


class SanitizerReport(AssertionError):
    """nodelayd's stderr held a sanitizer report."""


def check_sanitizers(output: str | Sequence[str], name: str = "nodelayd") -> None:
    """Raise SanitizerReport if `output` (text or lines) holds a report."""
    lines = output.splitlines() if isinstance(output, str) else list(output)
    found = [line for line in lines if SANITIZER_RX.search(line)]
    if found:
        raise SanitizerReport(f"{name}: sanitizer report on stderr:\n"
                              + "\n".join(found) + "\n--- output:\n"
                              + "\n".join(lines[-80:]))


class NodelaydProc(Proc):
    """A Proc running nodelayd (or a launcher that execs it, such as
    systemd-socket-activate): once stopped, fails on a sanitizer report."""

    def __init__(self, argv: Sequence[str], **kwargs):
        super().__init__(argv, watch=SANITIZER_RX, **kwargs)

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        if self.watched:
            check_sanitizers([*self.watched, "...", *self.lines], self.name)


def binary() -> str:
    """Path of the nodelayd binary (may not exist yet)."""
    return os.environ.get("NODELAYD_BIN") or os.path.join(
        REPO_ROOT, "build", "nodelayd")


def available() -> bool:
    b = binary()
    return os.path.isfile(b) and os.access(b, os.X_OK)


class Nodelayd:
    name = "nodelayd"

    def __init__(self, extra_args: Sequence[str] = (), start_timeout: float = 10.0,
                 name: str | None = None, binary_path: str | None = None):
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self._binary = binary_path
        if name:
            self.name = name

    @property
    def binary(self) -> str:
        return self._binary or binary()

    @contextlib.contextmanager
    def start(self, listen_port: int, upstream_host: str,
              upstream_port: int) -> Iterator[Endpoint]:
        up = f"[{upstream_host}]" if ":" in upstream_host else upstream_host
        argv = [self.binary, "--listen", f"{LOOPBACK}:{listen_port}",
                "--upstream", f"{up}:{upstream_port}", *self.extra_args]
        # A kernel-chosen stats port unless the caller picked one: several daemons (tests
        # in parallel, bench targets) must never collide on the default 127.0.0.1:9900.
        if not any(a == "--stats" or a.startswith("--stats=") for a in self.extra_args):
            argv += ["--stats", f"{LOOPBACK}:0"]
        with NodelaydProc(argv, name="nodelayd") as proc:
            m = proc.wait_for_line(LISTENING_RX, self.start_timeout)
            host = m.group(1).strip("[]")
            stats = [STATS_RX.search(line) for line in list(proc.lines)]
            url = next((s.group(1) for s in stats if s), None)
            yield Endpoint(self.name, host, int(m.group(2)), proc, stats_url=url)
