"""What an upstream sends before it resets the connection reaches the client, then the reset.

A server that refuses a client with a message and an abortive close ("* BYE too many
connections", iperf3's "server is busy") sends its message and then RST. Directly the client
reads the message and then gets ECONNRESET; HAProxy, nginx stream and socat pass the message
on too. nodelayd must as well, also when the RST has arrived before it checked its connect to
the server: the check (SO_ERROR) then reports ECONNRESET, which means the server accepted,
not that the connect failed. strace delays that check (`inject=getsockopt:delay_enter`) so the
banner and the RST are both there when it runs. test_faults covers the reset that arrives
while the session relays (`upstream_answer_before_its_reset_reaches_the_client`).

strace comes from Debian (scripts/install-deps).

Run: NODELAYD_BIN=build/nodelayd python3 -m unittest -v tests/e2e/test_resets.py
"""

import os
import re
import select
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kit.ports import LOOPBACK  # noqa: E402
from kit.testing import E2ETestCase  # noqa: E402

STRACE = "strace"
BANNER = b"* BYE too many connections\r\n"
CHECK_DELAY_US = 300_000
ATTACHED_RX = re.compile(r"attached(?: with (\d+) threads)?")


class DelayedGetsockopt:
    """strace -f attached to `pid`, holding each getsockopt() CHECK_DELAY_US before it runs."""

    def __init__(self, pid: int):
        self.pid = pid
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "DelayedGetsockopt":
        threads = len(os.listdir(f"/proc/{self.pid}/task"))
        self.proc = subprocess.Popen(
            [STRACE, "-f", "-o", "/dev/null", "-e", "trace=getsockopt",
             "-e", f"inject=getsockopt:delay_enter={CHECK_DELAY_US}", "-p", str(self.pid)],
            stderr=subprocess.PIPE)
        # strace says "Process N attached with T threads", or a line per thread.
        out = ""
        deadline = time.monotonic() + 10
        while sum(int(n or 1) for n in ATTACHED_RX.findall(out)) < threads:
            ready, _, _ = select.select([self.proc.stderr], [], [], 0.5)
            chunk = os.read(self.proc.stderr.fileno(), 4096).decode() if ready else ""
            if (ready and not chunk) or time.monotonic() > deadline:
                raise AssertionError(f"strace did not attach: {out!r}")
            out += chunk
        return self

    def __exit__(self, *exc) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.communicate(timeout=10)


def read_until_closed(s: socket.socket) -> tuple[bytes, str]:
    """Everything `s` receives, and how it ended: "reset", "eof" or "timeout"."""
    got = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                return got, "eof"
            got += d
    except ConnectionResetError:
        return got, "reset"
    except TimeoutError:
        return got, "timeout"


class UpstreamResets(E2ETestCase):
    TIMEOUT = 60.0

    def setUp(self) -> None:
        super().setUp()
        self.require(STRACE)

    def test_banner_and_reset_before_the_connect_is_checked(self):
        with socket.create_server((LOOPBACK, 0)) as upstream:
            upstream.settimeout(5)
            port = upstream.getsockname()[1]
            with self.nodelayd(LOOPBACK, port, "--threads", "1") as ep:
                with DelayedGetsockopt(ep.proc.pid):
                    with socket.create_connection((ep.host, ep.port), 5) as c:
                        c.settimeout(5)
                        u, _ = upstream.accept()
                        u.sendall(BANNER)
                        u.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        u.close()  # RST, while nodelayd's SO_ERROR check is held back
                        got, end = read_until_closed(c)
            log = "\n".join(ep.proc.lines)  # all of it, now that nodelayd has stopped
        self.assertEqual(got, BANNER, log)
        self.assertEqual(end, "reset", "the upstream's reset is passed on as a reset")
        self.assertNotIn("failed", log, "an upstream that accepted is no failed connect")
        self.assertIn("close=upstream-reset", log)
