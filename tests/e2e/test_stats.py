"""The stats endpoint against real traffic through the real daemon.

Exact counters and a promtool check of the live /metrics; a SIGSTOP-frozen daemon
showing up as added latency; steady ping-pong whose reported added latency matches
the proxied-minus-direct round trip; and imaplib's Nagle stalls counted per side
against a real Dovecot.

Run: NODELAYD_BIN=build/nodelayd python3 -m unittest -v tests/e2e/test_stats.py
"""

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kit import imap_client  # noqa: E402
from kit.dovecot import DOVECOT, Dovecot  # noqa: E402
from kit.echo import EchoServer, recv_exact  # noqa: E402
from kit.testing import E2ETestCase  # noqa: E402

PROMTOOL = "/usr/bin/promtool"


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def route_stats(ep, name="default") -> dict:
    data = json.loads(fetch(ep.stats_url + "/stats"))
    return next(r for r in data["routes"] if r["name"] == name)


def wait_stopped(pid: int, timeout: float = 5.0) -> None:
    """Waits until every thread of `pid` is in state T (stopped)."""
    deadline = time.monotonic() + timeout
    while True:
        states = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except FileNotFoundError:
                pass
        if states and all(st in ("T", "t") for st in states):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"nodelayd did not stop: thread states {states}")
        time.sleep(0.005)


class StatsEndpoint(E2ETestCase):
    TIMEOUT = 90.0

    def setUp(self):
        super().setUp()
        self.echo = self.enterContext(EchoServer())

    def wait_closed(self, ep, total: int) -> dict:
        """Polls until `total` sessions were accepted and none is open."""
        deadline = time.monotonic() + 10
        while True:
            r = route_stats(ep)
            if r["connections"]["total"] == total and r["connections"]["active"] == 0:
                return r
            self.assertLess(time.monotonic(), deadline, f"sessions never closed: {r}")
            time.sleep(0.05)

    def test_counters_are_exact_and_promtool_accepts_metrics(self):
        self.require(PROMTOOL)
        sizes = [1000 * (i + 1) + i for i in range(5)]
        with self.nodelayd(self.echo.host, self.echo.port, "--threads", "2") as ep:
            for n in sizes:
                with socket.create_connection((ep.host, ep.port), timeout=10) as s:
                    payload = bytes((i * 7 + n) & 0xFF for i in range(n))
                    s.sendall(payload)
                    s.shutdown(socket.SHUT_WR)
                    self.assertEqual(recv_exact(s, n), payload)
            r = self.wait_closed(ep, len(sizes))
            self.assertEqual(r["bytes"]["client_to_upstream"], sum(sizes))
            self.assertEqual(r["bytes"]["upstream_to_client"], sum(sizes))
            metrics = fetch(ep.stats_url + "/metrics")
            health = urllib.request.urlopen(ep.stats_url + "/healthz", timeout=5).status
        self.assertEqual(health, 200)
        for direction in ("client_to_upstream", "upstream_to_client"):
            rx = (r'^nodelayd_bytes_total\{route="default",direction="%s"\} (\S+)$'
                  % direction)
            m = re.search(rx, metrics, re.M)
            self.assertIsNotNone(m, metrics)
            self.assertEqual(float(m.group(1)), sum(sizes))
        m = re.search(r'^nodelayd_connections_total\{route="default"\} (\S+)$', metrics, re.M)
        self.assertEqual(float(m.group(1)), len(sizes))
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=metrics, text=True,
                               capture_output=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def test_frozen_daemon_shows_as_added_latency(self):
        with self.nodelayd(self.echo.host, self.echo.port, "--threads", "1") as ep:
            with socket.create_connection((ep.host, ep.port), timeout=10) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.sendall(b"warm")
                recv_exact(s, 4)
                os.kill(ep.proc.pid, signal.SIGSTOP)
                try:
                    # SIGSTOP is asynchronous: send only once every thread has stopped, or a
                    # worker still running could relay the message at once.
                    wait_stopped(ep.proc.pid)
                    s.sendall(b"frozen")  # lands in the kernel, stamped on arrival
                    time.sleep(0.3)
                finally:
                    os.kill(ep.proc.pid, signal.SIGCONT)
                self.assertEqual(recv_exact(s, 6), b"frozen")
            lat = route_stats(ep)["added_latency"]["client_to_upstream"]
        print(f"\n  added latency c2u after a 300 ms SIGSTOP: max {lat['max_us']} us",
              file=sys.stderr)
        self.assertGreaterEqual(lat["max_us"], 300_000)
        self.assertLess(lat["max_us"], 5_000_000)

    def test_ping_pong_added_latency_matches_round_trip_difference(self):
        rounds = 2000
        with self.nodelayd(self.echo.host, self.echo.port, "--threads", "1") as ep:
            # Alternate direct and proxied round trips so both see the same machine load.
            with socket.create_connection((self.echo.host, self.echo.port), timeout=10) as d, \
                    socket.create_connection((ep.host, ep.port), timeout=10) as p:
                times = {d: [], p: []}
                for s in (d, p):
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for _ in range(rounds):
                    for s in (d, p):
                        t0 = time.perf_counter()
                        s.sendall(b"x" * 32)
                        recv_exact(s, 32)
                        times[s].append(time.perf_counter() - t0)
                direct = statistics.median(times[d])
                proxied = statistics.median(times[p])
            lat = route_stats(ep)["added_latency"]
        reported = (lat["client_to_upstream"]["p50_us"] + lat["upstream_to_client"]["p50_us"]) / 1e6
        diff = proxied - direct
        print(f"\n  ping-pong p50: direct {direct * 1e6:.1f} us, proxied {proxied * 1e6:.1f} us, "
              f"difference {diff * 1e6:.1f} us; reported added p50 (both directions) "
              f"{reported * 1e6:.1f} us", file=sys.stderr)
        self.assertEqual(lat["client_to_upstream"]["count"], rounds)
        # The daemon's own time is most of the difference (the rest is the extra kernel
        # hops), so it must be positive and of the same size, within bucket resolution
        # (25 %) and scheduling noise.
        self.assertGreater(reported, 0.2 * diff)
        self.assertLess(reported, 2.0 * diff + 50e-6)


class ImapPeerStalls(E2ETestCase):
    TIMEOUT = 90.0
    COUNT = 100

    def setUp(self):
        super().setUp()
        self.require(DOVECOT)
        self.dovecot = self.enterContext(Dovecot())

    def client_stalls(self, *args: str) -> int:
        dv = self.dovecot
        with self.nodelayd(dv.host, dv.port, *args) as ep:
            imap_client.append_messages(ep.host, ep.port, dv.user, dv.password, self.COUNT)
            stalls = route_stats(ep)["peer_stalls"]
        # The close line is written once the session ends; the daemon has exited by now.
        self.assertIn(f"stalls_client={stalls['client']}", ep.proc.tail(200))
        print(f"\n  {self.COUNT} APPENDs {args or '(defaults)'}: peer stalls {stalls}",
              file=sys.stderr)
        return stalls["client"]

    def test_quickack_off_counts_the_client_stalls(self):
        self.assertGreaterEqual(self.client_stalls("--client-quickack", "off"), 80)

    def test_default_policies_leave_almost_none(self):
        self.assertLessEqual(self.client_stalls(), 5)
