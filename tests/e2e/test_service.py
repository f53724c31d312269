"""nodelayd as a systemd service, driven the way systemd drives it.

A NOTIFY_SOCKET of the test's own sees READY, RELOADING/READY and STOPPING in order and
watchdog pings; systemd-socket-activate passes the listening socket; SIGHUP reloads under a
client looping connections with none refused or cut; a broken config on reload changes
nothing; under JOURNAL_STREAM log lines carry syslog priorities.

Run: NODELAYD_BIN=build/nodelayd python3 -m unittest -v tests/e2e/test_service.py
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kit import nodelayd  # noqa: E402
from kit.echo import EchoServer, recv_exact  # noqa: E402
from kit.ports import free_port, wait_listening  # noqa: E402
from kit.testing import E2ETestCase  # noqa: E402

SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate"
LISTENING = re.compile(r"listening on [^\s]+:(\d+)")


class NotifySocket:
    """The datagram socket systemd would listen on for sd_notify()."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[str] = []

    def wait_for(self, field: str, timeout: float = 10.0, proc=None) -> str:
        """Receives until a message holds `field` (e.g. "READY=1"); returns it.  With
        `proc`, a timeout shows the daemon's last log lines."""
        deadline = time.monotonic() + timeout
        while True:
            for m in self.messages:
                if field in m.split("\n"):
                    self.messages = self.messages[self.messages.index(m) + 1:]
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                log = "\n".join(proc.lines) if proc is not None else "(not captured)"
                raise AssertionError(f"no {field} from nodelayd within {timeout}s; "
                                     f"its log:\n{log}")
            self.sock.settimeout(left)
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass

    def close(self):
        self.sock.close()


def read_file(path: str) -> str:
    with open(path) as f:
        return f.read()


def echo_once(port: int, payload: bytes = b"ping") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        return recv_exact(s, len(payload))


class ServiceProtocol(E2ETestCase):
    TIMEOUT = 60.0

    def setUp(self):
        super().setUp()
        self.require(nodelayd.binary())
        self.echo = self.enterContext(EchoServer())
        self.tmp = self.enterContext(tempfile.TemporaryDirectory(prefix="nodelayd-svc-"))
        self.conf = os.path.join(self.tmp, "nodelayd.conf")

    def write_conf(self, routes: dict[str, int], extra: str = "") -> None:
        """routes: name -> listen port; every route relays to the echo server."""
        text = "threads = 2\nstats = 127.0.0.1:0\nshutdown-timeout = 2s\n" + extra
        for name, port in routes.items():
            text += (f"\n[route.{name}]\nlisten = 127.0.0.1:{port}\n"
                     f"upstream = 127.0.0.1:{self.echo.port}\n")
        with open(self.conf + ".new", "w") as f:
            f.write(text)
        os.replace(self.conf + ".new", self.conf)

    def start(self, argv, env_extra: dict) -> nodelayd.NodelaydProc:
        env = dict(os.environ, **env_extra)
        proc = self.enterContext(nodelayd.NodelaydProc(argv, name="nodelayd", env=env))
        return proc

    def test_notify_ready_reload_stopping_in_order(self):
        notify = NotifySocket(self.tmp)
        self.addCleanup(notify.close)
        port = free_port()
        self.write_conf({"a": port})
        proc = self.start([nodelayd.binary(), "--config", self.conf],
                          {"NOTIFY_SOCKET": notify.path})
        ready = notify.wait_for("READY=1")
        self.assertIn("STATUS=", ready)
        self.assertEqual(echo_once(port), b"ping")  # READY means it accepts
        os.kill(proc.pid, signal.SIGHUP)
        reloading = notify.wait_for("RELOADING=1", proc=proc)
        self.assertRegex(reloading, r"MONOTONIC_USEC=\d+")
        notify.wait_for("READY=1")
        os.kill(proc.pid, signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        self.assertEqual(proc.popen.wait(10), 0)

    def test_signals_work_when_started_with_them_blocked(self):
        # The signal mask is inherited through exec; a parent that blocked SIGTERM while it
        # forked must not leave a daemon that never sees it.
        notify = NotifySocket(self.tmp)
        self.addCleanup(notify.close)
        self.write_conf({"a": free_port()})
        handled = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, handled)
        try:
            proc = self.start([nodelayd.binary(), "--config", self.conf],
                              {"NOTIFY_SOCKET": notify.path})
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        notify.wait_for("READY=1")
        os.kill(proc.pid, signal.SIGHUP)
        notify.wait_for("RELOADING=1")
        notify.wait_for("READY=1")
        os.kill(proc.pid, signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        self.assertEqual(proc.popen.wait(10), 0)

    def test_watchdog_pings_at_half_the_interval(self):
        notify = NotifySocket(self.tmp)
        self.addCleanup(notify.close)
        self.write_conf({"a": free_port()})
        proc = self.start([nodelayd.binary(), "--config", self.conf],
                          {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"})
        notify.wait_for("READY=1")
        t0 = time.monotonic()
        for _ in range(4):
            notify.wait_for("WATCHDOG=1", timeout=2)
        elapsed = time.monotonic() - t0
        # Four pings at ~200 ms intervals; well under the 400 ms deadline each.
        self.assertLess(elapsed, 1.6)
        os.kill(proc.pid, signal.SIGTERM)
        self.assertEqual(proc.popen.wait(10), 0)

    def test_socket_activation_by_address_and_by_name(self):
        self.require(SOCKET_ACTIVATE)
        # By address: the command-line route listens where systemd's socket is.
        port = free_port()
        proc = self.start([SOCKET_ACTIVATE, "-l", f"127.0.0.1:{port}", nodelayd.binary(),
                           "--listen", f"127.0.0.1:{port}",
                           "--upstream", f"127.0.0.1:{self.echo.port}", "--stats", "off"], {})
        # systemd-socket-activate starts nodelayd when the first connection arrives.
        wait_listening(port)
        self.assertEqual(echo_once(port), b"ping")
        proc.wait_for_line(re.compile("uses the socket passed by the service manager"), 10)
        # By name: the passed socket's FileDescriptorName matches [route.imap], whose own
        # listen address differs.
        port2 = free_port()
        self.write_conf({"imap": free_port()})
        proc2 = self.start([SOCKET_ACTIVATE, "-l", f"127.0.0.1:{port2}", "--fdname=imap",
                            nodelayd.binary(), "--config", self.conf], {})
        wait_listening(port2)
        self.assertEqual(echo_once(port2, b"by name"), b"by name")
        proc2.wait_for_line(re.compile(r"route=imap uses the socket passed .*'imap'"), 10)
        for p in (proc, proc2):
            os.kill(p.pid, signal.SIGTERM)
            self.assertEqual(p.popen.wait(10), 0)

    def test_reload_under_load_refuses_and_cuts_nothing(self):
        notify = NotifySocket(self.tmp)
        self.addCleanup(notify.close)
        port_a, port_b = free_port(), free_port()
        self.write_conf({"a": port_a})
        proc = self.start([nodelayd.binary(), "--config", self.conf],
                          {"NOTIFY_SOCKET": notify.path})
        notify.wait_for("READY=1")
        failures: list[str] = []
        done = threading.Event()
        count = [0]

        def loop():
            while not done.is_set():
                try:
                    payload = os.urandom(64)
                    if echo_once(port_a, payload) != payload:
                        failures.append("wrong bytes")
                    count[0] += 1
                except OSError as e:
                    failures.append(repr(e))

        t = threading.Thread(target=loop)
        t.start()
        try:
            for i in range(6):
                time.sleep(0.15)
                # Alternate: add route b with a policy change on a, then remove b again.
                if i % 2 == 0:
                    self.write_conf({"a": port_a, "b": port_b}, "client-cork = off\n")
                else:
                    self.write_conf({"a": port_a})
                os.kill(proc.pid, signal.SIGHUP)
                notify.wait_for("RELOADING=1")
                self.assertNotIn("reload failed", notify.wait_for("READY=1"))
                if i % 2 == 0:
                    self.assertEqual(echo_once(port_b, b"new route"), b"new route")
            time.sleep(0.15)
        finally:
            done.set()
            t.join(10)
        print(f"\n  {count[0]} connections during 6 reloads, {len(failures)} failed",
              file=sys.stderr)
        self.assertEqual(failures, [])
        self.assertGreater(count[0], 20)
        # The last reload removed route b: its listener is closed.
        with self.assertRaises(OSError):
            echo_once(port_b)
        os.kill(proc.pid, signal.SIGTERM)
        self.assertEqual(proc.popen.wait(10), 0)

    def test_broken_config_on_reload_keeps_the_old_one(self):
        notify = NotifySocket(self.tmp)
        self.addCleanup(notify.close)
        port = free_port()
        self.write_conf({"a": port})
        proc = self.start([nodelayd.binary(), "--config", self.conf],
                          {"NOTIFY_SOCKET": notify.path})
        notify.wait_for("READY=1")
        with open(self.conf, "a") as f:
            f.write("\n[route.bad]\nlisten = 127.0.0.1:notaport\nupstream = x:1\n")
        os.kill(proc.pid, signal.SIGHUP)
        notify.wait_for("RELOADING=1", proc=proc)
        ready = notify.wait_for("READY=1", proc=proc)
        self.assertIn("reload failed", ready)
        proc.wait_for_line(re.compile(r"reload failed; still serving .*notaport"), 10)
        self.assertEqual(echo_once(port), b"ping")
        os.kill(proc.pid, signal.SIGTERM)
        self.assertEqual(proc.popen.wait(10), 0)

    def test_journal_stream_gets_priority_prefixes(self):
        log_path = os.path.join(self.tmp, "journal.log")
        with open(log_path, "w") as log:
            st = os.fstat(log.fileno())
            p = subprocess.Popen(
                [nodelayd.binary(), "--listen", "127.0.0.1:0", "--upstream",
                 f"127.0.0.1:{self.echo.port}", "--stats", "off"],
                stderr=log, stdout=subprocess.DEVNULL,
                env=dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}"))
            try:
                deadline = time.monotonic() + 10
                while "listening on" not in read_file(log_path):
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.05)
                p.send_signal(signal.SIGTERM)
                self.assertEqual(p.wait(10), 0)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        lines = read_file(log_path).splitlines()
        nodelayd.check_sanitizers(lines)
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^<[0-7]>[^<]", line)
            self.assertNotRegex(line, r"^\<\d\>\d{4}-\d\d-\d\d", "no timestamp under journald")
        self.assertTrue(any(line.startswith("<6>") for line in lines))
