"""The system calls nodelayd makes per relayed message and per connection, counted by strace.

On this kind of machine a system call is the relay's biggest cost (a virtual machine whose
syscalls exit to the hypervisor), so the counts are part of what nodelayd promises, and a
change that brings a call back shows here as a failure, not as a slow bench run weeks later.

- Per message on an established session: the relay's waits use the edge-triggered epoll
  registration as it is (src/edge_wait.cpp), so no epoll_ctl at all; and one epoll event per
  message (a socket left registered for EPOLLOUT, whose registration is re-armed per wait,
  reports itself writable each time: a spurious event per message, as nodelayd once did).
- Per short connection (connect, one request and answer, close), what set-up and tear-down
  cost: accept4 hands over a non-blocking socket with the peer's address (no ioctl, no
  getpeername); the upstream socket is created non-blocking and its connect checked with
  SO_ERROR alone (no poll); no epoll_ctl before close() (the kernel drops a closed socket
  from the set); one read per message, since EPOLLRDHUP says when a FIN came behind a
  short read. Every count is compared with a bound, and the whole run's counts are printed.

strace comes from Debian (scripts/install-deps). The daemon runs with --busy-poll off, so each
message is one epoll_wait that returns events.

Run: NODELAYD_BIN=build/nodelayd python3 -m unittest -v tests/e2e/test_syscalls.py
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kit import nodelayd  # noqa: E402
from kit.echo import EchoServer  # noqa: E402
from kit.ports import listening_inodes  # noqa: E402
from kit.testing import E2ETestCase  # noqa: E402

STRACE = "strace"
IO_TIMEOUT = 5.0
TRACED = ("epoll_ctl,epoll_wait,ioctl,poll,getpeername,accept,accept4,setsockopt,getsockopt,"
          "recvfrom,recvmsg")
EPOLLOUT, EPOLLRDHUP, EPOLLET = 0x4, 0x2000, 1 << 31
# `PID  name(args) = result`, also the two halves of a call that another thread interrupted.
CALL_RX = re.compile(r"^\d+\s+(?:<\.\.\. )?(\w+)(?:\(| resumed>).*?= (-?\d+)")


class Strace:
    """strace -f attached to a running process, counting the calls in TRACED."""

    def __init__(self, pid: int):
        self.pid = pid
        self._dir = tempfile.TemporaryDirectory(prefix="nodelayd-strace-")
        self.path = os.path.join(self._dir.name, "trace")
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Strace":
        self.proc = subprocess.Popen(
            [STRACE, "-f", "-qq", "-e", f"trace={TRACED}", "-o", self.path, "-p", str(self.pid)],
            stderr=subprocess.PIPE, text=True)
        # strace writes nothing until it has attached to every thread; a traced call proves it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(self.path) and os.path.getsize(self.path) > 0:
                return self
            if self.proc.poll() is not None:
                raise AssertionError("strace failed: " + self.proc.stderr.read())
            time.sleep(0.05)
        raise AssertionError("strace did not attach within 10 s")

    def stop(self) -> dict[str, list[int]]:
        """Detaches; {syscall: [result of each completed call]}."""
        assert self.proc is not None
        time.sleep(0.2)  # let calls in flight finish
        self.proc.send_signal(signal.SIGINT)
        self.proc.communicate(timeout=10)
        calls: dict[str, list[int]] = {}
        with open(self.path) as f:
            for line in f:
                m = CALL_RX.match(line)
                if m and "<unfinished ...>" not in line:
                    calls.setdefault(m.group(1), []).append(int(m.group(2)))
        return calls

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.communicate()
        self._dir.cleanup()


def epoll_registrations(pid: int) -> dict[int, int]:
    """{descriptor: event mask} over every epoll set of process `pid`
    (/proc/PID/fdinfo of each eventpoll descriptor: `tfd: N events: MASK ...`)."""
    got: dict[int, int] = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") != "anon_inode:[eventpoll]":
                continue
            with open(f"/proc/{pid}/fdinfo/{name}") as f:
                for m in re.finditer(r"tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)", f.read()):
                    got[int(m.group(1))] = int(m.group(2), 16)
        except FileNotFoundError:
            continue
    return got


def listening_descriptors(pid: int) -> set[int]:
    """Descriptors of process `pid` that are listening TCP sockets. A worker registers its
    listener when its first accept waits, which under a sanitizer can come after the
    `listening on` line, so a set taken at start-up may miss one."""
    listeners = listening_inodes()
    got: set[int] = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{name}"))
        except FileNotFoundError:
            continue
        if m and int(m.group(1)) in listeners:
            got.add(int(name))
    return got


def reads(calls: dict[str, list[int]]) -> int:
    return count(calls, "recvfrom") + count(calls, "recvmsg")


def events(calls: dict[str, list[int]]) -> int:
    return sum(r for r in calls.get("epoll_wait", []) if r > 0)


def count(calls: dict[str, list[int]], name: str) -> int:
    return len(calls.get(name, []))


class Syscalls(E2ETestCase):
    TIMEOUT = 120.0

    def setUp(self) -> None:
        super().setUp()
        self.require(STRACE)
        self.echo = self.enterContext(EchoServer())

    def daemon(self):
        return self.nodelayd(self.echo.host, self.echo.port, "--busy-poll", "off")

    def test_no_epoll_ctl_and_one_event_per_message(self):
        rounds = 200
        with self.daemon() as ep:
            before = epoll_registrations(ep.proc.pid)
            with socket.create_connection((ep.host, ep.port), IO_TIMEOUT) as c:
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for _ in range(5):  # set-up done
                    c.sendall(b"warm")
                    self.assertEqual(c.recv(64), b"warm")
                with Strace(ep.proc.pid) as trace:
                    for i in range(rounds):
                        msg = b"message %04d" % i
                        c.sendall(msg)
                        got = b""
                        while len(got) < len(msg):
                            got += c.recv(64)
                        self.assertEqual(got, msg)
                    calls = trace.stop()
                listeners = listening_descriptors(ep.proc.pid)
                session = {fd: mask for fd, mask in epoll_registrations(ep.proc.pid).items()
                           if fd not in before and fd not in listeners}
        print(f"\n{rounds} round trips (2 messages each): {calls_summary(calls)}")
        # Both sockets registered once for everything the relay waits for, edge-triggered;
        # EPOLLRDHUP tells whether a FIN came behind the bytes of a short read.
        self.assertEqual(len(session), 2, f"the session's sockets in epoll: {session}")
        for fd, mask in session.items():
            want = EPOLLOUT | EPOLLRDHUP | EPOLLET
            self.assertEqual(mask & want, want, f"descriptor {fd}'s epoll mask {mask:#x}")
        self.assertEqual(count(calls, "epoll_ctl"), 0, "epoll_ctl per message")
        # One read per message: a short read with no FIN reported is the socket drained
        # (reading on to EAGAIN would double the reads).
        self.assertLessEqual(reads(calls), 2 * rounds * 1.05, "reads per relayed message")
        self.assertLessEqual(events(calls), 2 * rounds * 1.1,
                             "epoll events per relayed message (2 per round trip)")
        self.assertGreaterEqual(events(calls), 2 * rounds * 0.5,
                                "the trace saw the daemon's events")

    def test_short_connections(self):
        conns = 100
        with self.daemon() as ep:
            with Strace(ep.proc.pid) as trace:
                for i in range(conns):
                    with socket.create_connection((ep.host, ep.port), IO_TIMEOUT) as c:
                        msg = b"request %03d" % i
                        c.sendall(msg)
                        c.shutdown(socket.SHUT_WR)
                        got = b""
                        while True:
                            d = c.recv(64)
                            if not d:
                                break
                            got += d
                        self.assertEqual(got, msg)
                calls = trace.stop()
        print(f"\n{conns} connections: {calls_summary(calls)}")
        per = {name: len(results) / conns for name, results in calls.items()}
        # Per connection none (0.05: room for a call of the daemon's control thread, such as
        # a stats connection accepted while the trace runs).
        self.assertLess(per.get("ioctl", 0), 0.05, "FIONBIO: sockets are born non-blocking")
        self.assertLess(per.get("poll", 0), 0.05, "a connect is checked with SO_ERROR alone")
        self.assertLess(per.get("getpeername", 0), 0.05, "accept4 gives the peer's address")
        self.assertLess(per.get("accept", 0), 0.05, "accept4, not accept + ioctl")
        # Per socket an ADD and one MOD for EPOLLOUT and EPOLLRDHUP (the upstream's is the
        # connect's); nothing per wait, also on the listener, and nothing before close().
        self.assertLessEqual(per.get("epoll_ctl", 0), 4.05, "epoll_ctl per connection")
        # TCP_NODELAY and SO_TIMESTAMPNS on the upstream socket; quickack before reading
        # the upstream's answer and the client's FIN (not before a socket's first read).
        self.assertLessEqual(per.get("setsockopt", 0), 4.05, "setsockopt per connection")
        self.assertGreaterEqual(per.get("accept4", 0), 1.0, "one accept4 per connection")
        # The request; the answer and the FIN behind it (reported by EPOLLRDHUP, so read at
        # once); the client's FIN.
        self.assertLessEqual(reads(calls) / conns, 4.05, "reads per connection")


def calls_summary(calls: dict[str, list[int]]) -> str:
    parts = [f"{name} {len(results)}" for name, results in sorted(calls.items())]
    return ", ".join(parts) + f"; epoll events {events(calls)}"


if __name__ == "__main__":
    import unittest

    unittest.main()
