"""Socket options on nodelayd's own sockets, read from the running daemon.

nodelayd sets TCP_NODELAY and SO_TIMESTAMPNS on its listeners so accepted sockets inherit
them (two setsockopt calls less per connection); the upstream socket gets them itself. This
test duplicates the daemon's descriptors with pidfd_getfd(2) and reads the options the
kernel really holds on each side of a live session, over IPv4 and IPv6: the defaults, each
side turned off, stats off (no timestamps), a reload that flips client-nodelay while the
listener is kept (sessions accepted after it must follow the new value, not the
listener's), and a listener passed by systemd-socket-activate, whose first connection was
queued before nodelayd ran (it must get the options all the same). What nodelayd does with
epoll is tested by counting its system calls: test_syscalls.py.

Run: NODELAYD_BIN=build/nodelayd python3 -m unittest -v tests/e2e/test_socket_options.py
"""

import contextlib
import ctypes
import os
import re
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kit import nodelayd  # noqa: E402
from kit.ports import free_port, wait_listening  # noqa: E402
from kit.testing import E2ETestCase  # noqa: E402

SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate"
SO_TIMESTAMPNS = 35  # asm-generic/socket.h, as on x86 and arm64
SYS_PIDFD_GETFD = 438  # the same number on every architecture
IO_TIMEOUT = 5.0

_libc = ctypes.CDLL(None, use_errno=True)


def grab_fd(pidfd: int, fd: int) -> int | None:
    """A duplicate of descriptor `fd` of the process behind `pidfd`, or None."""
    got = _libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
    return got if got >= 0 else None


def daemon_fd(pid: int, match) -> tuple[int, socket.socket]:
    """The daemon's descriptor number of the TCP socket for which match(sockname,
    peername) holds, and a duplicate of it."""
    pidfd = os.pidfd_open(pid)
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                    continue
            except FileNotFoundError:
                continue
            dup = grab_fd(pidfd, int(name))
            if dup is None:
                continue
            s = socket.socket(fileno=dup)
            try:
                if s.type == socket.SOCK_STREAM and match(s.getsockname()[:2],
                                                          s.getpeername()[:2]):
                    return int(name), s
            except OSError:
                pass  # a listener or an unconnected socket: no peer name
            s.close()
    finally:
        os.close(pidfd)
    raise AssertionError("no such socket in the daemon")


def daemon_socket(pid: int, match) -> socket.socket:
    """The daemon's TCP socket for which match(sockname, peername) holds."""
    return daemon_fd(pid, match)[1]


def options(s: socket.socket) -> tuple[int, int]:
    return (s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
            s.getsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS))


class Upstream:
    """A listener the test accepts from itself, so it knows nodelayd's upstream address."""

    def __init__(self, host: str):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(IO_TIMEOUT)
        self.host, self.port = host, self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


@contextlib.contextmanager
def session(pid: int, host: str, port: int, upstream: Upstream):
    """One relayed connection; yields the options of nodelayd's (client side, upstream side)."""
    with socket.create_connection((host, port), IO_TIMEOUT) as c:
        up, _ = upstream.sock.accept()
        with up:
            c.sendall(b"ping")  # set-up is over once bytes flow
            up.settimeout(IO_TIMEOUT)
            assert up.recv(4) == b"ping"
            client_addr = c.getsockname()[:2]
            up_addr = up.getpeername()[:2]
            cs = daemon_socket(pid, lambda me, peer: peer == client_addr)
            us = daemon_socket(pid, lambda me, peer: me == up_addr)
            with cs, us:
                yield options(cs), options(us)


class SocketOptions(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.require(nodelayd.binary())

    def check(self, host: str, args: list[str], want_client, want_upstream):
        up = Upstream(host)
        self.addCleanup(up.close)
        listen = f"[{host}]" if ":" in host else host
        argv = [nodelayd.binary(), "--listen", f"{listen}:0",
                "--upstream", f"{listen}:{up.port}", *args]
        if "--stats" not in args:
            argv += ["--stats", "127.0.0.1:0"]
        with nodelayd.NodelaydProc(argv, name="nodelayd") as proc:
            port = int(proc.wait_for_line(nodelayd.LISTENING_RX, 10).group(2))
            with session(proc.pid, host, port, up) as (client_side, upstream_side):
                self.assertEqual(client_side, want_client, "client side (nodelay, timestamps)")
                self.assertEqual(upstream_side, want_upstream,
                                 "upstream side (nodelay, timestamps)")
        self.assertEqual(proc.returncode, 0, proc.tail())

    def test_defaults(self):
        for host in ("127.0.0.1", "::1"):
            with self.subTest(host=host):
                self.check(host, [], (1, 1), (1, 1))

    def test_nodelay_off_each_side(self):
        for host in ("127.0.0.1", "::1"):
            with self.subTest(host=host):
                self.check(host, ["--client-nodelay", "off"], (0, 1), (1, 1))
                self.check(host, ["--upstream-nodelay", "off"], (1, 1), (0, 1))

    def test_stats_off_means_no_timestamps(self):
        for host in ("127.0.0.1", "::1"):
            with self.subTest(host=host):
                self.check(host, ["--stats", "off"], (1, 0), (1, 0))

    def test_socket_activated_listener(self):
        self.require(SOCKET_ACTIVATE)
        for args, want in (([], (1, 1)), (["--client-nodelay", "off"], (0, 1))):
            with self.subTest(args=args):
                up = Upstream("127.0.0.1")
                self.addCleanup(up.close)
                port = free_port()
                argv = [SOCKET_ACTIVATE, "-l", f"127.0.0.1:{port}", nodelayd.binary(),
                        "--listen", f"127.0.0.1:{port}", "--upstream",
                        f"127.0.0.1:{up.port}", "--stats", "127.0.0.1:0", *args]
                with nodelayd.NodelaydProc(argv, name="nodelayd") as proc:
                    wait_listening(port)
                    # This connection starts nodelayd: it waits in the passed socket's queue.
                    for _ in range(2):
                        with session(proc.pid, "127.0.0.1", port, up) as (c, _):
                            self.assertEqual(c, want)
                self.assertEqual(proc.returncode, 0, proc.tail())

    def test_reload_that_flips_client_nodelay(self):
        up = Upstream("127.0.0.1")
        self.addCleanup(up.close)
        tmp = self.enterContext(tempfile.TemporaryDirectory(prefix="nodelayd-opts-"))
        conf = os.path.join(tmp, "nodelayd.conf")
        port = free_port()

        def write(nodelay: str):
            with open(conf + ".new", "w") as f:
                f.write(f"stats = 127.0.0.1:0\nclient-nodelay = {nodelay}\n"
                        f"[route.a]\nlisten = 127.0.0.1:{port}\n"
                        f"upstream = 127.0.0.1:{up.port}\n")
            os.replace(conf + ".new", conf)

        def reload_to(nodelay: str, want: int):
            write(nodelay)
            os.kill(proc.pid, signal.SIGHUP)
            proc.wait_for_line(re.compile(r"reloaded: 1 route\(s\): 1 kept"), 10)
            # Workers take the new route object from their own event loops: allow them a
            # moment, but a value that never follows the reload fails.
            deadline = time.monotonic() + 5
            while True:
                with session(proc.pid, "127.0.0.1", port, up) as (c, _):
                    if c[0] == want or time.monotonic() > deadline:
                        break
                time.sleep(0.05)
            self.assertEqual(c, (want, 1), f"client side after client-nodelay = {nodelay}")

        write("on")
        with nodelayd.NodelaydProc([nodelayd.binary(), "--config", conf],
                                   name="nodelayd") as proc:
            proc.wait_for_line(nodelayd.LISTENING_RX, 10)
            with session(proc.pid, "127.0.0.1", port, up) as (c, _):
                self.assertEqual(c, (1, 1))
            reload_to("off", 0)
            reload_to("on", 1)
        self.assertEqual(proc.returncode, 0, proc.tail())


if __name__ == "__main__":
    import unittest
    unittest.main()
