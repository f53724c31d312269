"""PROXY protocol: Dovecot and nginx log the client's address, not nodelayd's.

The client connects to nodelayd from 127.0.0.2 (its socket bound there before
connect); nodelayd connects to the server from 127.0.0.1.  With
--send-proxy v1/v2, Dovecot (listener with `haproxy = yes`) must log
rip=127.0.0.2 and nginx (`listen ... proxy_protocol`) $proxy_protocol_addr
127.0.0.2 with the client's port; without it both log 127.0.0.1 (the control
that proves the assertions can fail).  --accept-proxy: nodelayd A
(--send-proxy v2) in front of nodelayd B (--accept-proxy on --send-proxy v1)
in front of nginx; a client from 127.0.0.3 is what nginx logs.

Run: NODELAYD_BIN=build/nodelayd python3 -m unittest -v tests/e2e/test_proxy_protocol.py
"""

import http.client
import imaplib
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kit.dovecot import DOVECOT, Dovecot  # noqa: E402
from kit.nginx import NGINX, Nginx  # noqa: E402
from kit.testing import E2ETestCase  # noqa: E402

CLIENT = "127.0.0.2"        # where the test's client connects from
CHAIN_CLIENT = "127.0.0.3"  # the same, for the accept-proxy chain
PROXY_SIDE = "127.0.0.1"    # where nodelayd connects to the server from
IO_TIMEOUT = 10.0
LOG_WAIT_S = 5.0
BODY = b"who is asking?\n"


def connect_from(source: str, host: str, port: int) -> socket.socket:
    return socket.create_connection((host, port), IO_TIMEOUT,
                                    source_address=(source, 0))


class IMAP4From(imaplib.IMAP4):
    """imaplib.IMAP4 whose socket is bound to `source` before connecting."""

    def __init__(self, host: str, port: int, source: str):
        self._source = source
        super().__init__(host, port, timeout=IO_TIMEOUT)

    def _create_socket(self, timeout):
        return connect_from(self._source, self.host, self.port)


def wait_for(what: str, probe, timeout: float = LOG_WAIT_S):
    """Polls probe() until it returns something truthy; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout:g}s")
        time.sleep(0.05)


def http_get_from(source: str, host: str, port: int,
                  path: str = "/who.txt") -> tuple[int, bytes, int]:
    """One GET from `source`; returns (status, body, client port)."""
    conn = http.client.HTTPConnection(host, port, timeout=IO_TIMEOUT,
                                      source_address=(source, 0))
    try:
        conn.connect()
        client_port = conn.sock.getsockname()[1]
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read(), client_port
    finally:
        conn.close()


class DovecotLogsClientAddress(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.require(DOVECOT)

    def login_rip(self, haproxy: bool, *args: str) -> str:
        """Logs in from CLIENT via nodelayd; returns the rip= Dovecot logged."""
        dv = self.enterContext(Dovecot(haproxy=haproxy))
        with self.nodelayd(dv.host, dv.port, *args) as ep:
            imap = IMAP4From(ep.host, ep.port, CLIENT)
            try:
                self.assertEqual(imap.sock.getsockname()[0], CLIENT)
                self.assertEqual(imap.login(dv.user, dv.password)[0], "OK")
                self.assertEqual(imap.noop()[0], "OK")
            finally:
                imap.logout()

            def login_line():
                with open(dv.log_path, encoding="utf-8",
                          errors="replace") as f:
                    return next((line for line in f
                                 if f"Login: user=<{dv.user}>" in line), None)
            line = wait_for("Dovecot login line", login_line)
        m = re.search(r"\brip=([0-9a-f.:]+)", line)
        self.assertIsNotNone(m, line)
        return m.group(1)

    def test_send_proxy_v1(self):
        self.assertEqual(self.login_rip(True, "--send-proxy", "v1"), CLIENT)

    def test_send_proxy_v2(self):
        self.assertEqual(self.login_rip(True, "--send-proxy", "v2"), CLIENT)

    def test_control_without_send_proxy_logs_nodelayd(self):
        """Proves the tests above can fail: without a header, rip is ours."""
        self.assertEqual(self.login_rip(False), PROXY_SIDE)


class NginxLogsClientAddress(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.require(NGINX)

    def start_nginx(self, proxy_protocol: bool) -> Nginx:
        return self.enterContext(Nginx(files={"/who.txt": BODY},
                                       proxy_protocol=proxy_protocol,
                                       access_log=True))

    def logged_request(self, nginx: Nginx) -> dict:
        entries = wait_for("nginx access log entry", nginx.access_log_entries)
        self.assertEqual(len(entries), 1, entries)
        self.assertEqual(entries[0]["request"], "GET /who.txt HTTP/1.1")
        return entries[0]

    def get_via_nodelayd(self, version: str) -> None:
        nginx = self.start_nginx(proxy_protocol=True)
        with self.nodelayd(nginx.host, nginx.http_port,
                           "--send-proxy", version) as ep:
            status, body, client_port = http_get_from(CLIENT, ep.host, ep.port)
        self.assertEqual((status, body), (200, BODY))
        entry = self.logged_request(nginx)
        self.assertEqual(entry["proxy_addr"], CLIENT, entry)
        self.assertEqual(entry["proxy_port"], str(client_port), entry)
        # The destination is the address the client connected to: nodelayd's.
        self.assertEqual(entry["proxy_server_addr"], ep.host, entry)
        self.assertEqual(entry["proxy_server_port"], str(ep.port), entry)
        # The TCP peer nginx saw was nodelayd, so the address came from the header.
        self.assertEqual(entry["remote_addr"], PROXY_SIDE, entry)

    def test_send_proxy_v1(self):
        self.get_via_nodelayd("v1")

    def test_send_proxy_v2(self):
        self.get_via_nodelayd("v2")

    def test_control_without_send_proxy_logs_nodelayd(self):
        """Proves the tests above can fail: without a header, nginx sees us."""
        nginx = self.start_nginx(proxy_protocol=False)
        with self.nodelayd(nginx.host, nginx.http_port) as ep:
            status, _, _ = http_get_from(CLIENT, ep.host, ep.port)
        self.assertEqual(status, 200)
        entry = self.logged_request(nginx)
        self.assertEqual(entry["remote_addr"], PROXY_SIDE, entry)
        self.assertIn(entry["proxy_addr"], ("", "-"), entry)

    def test_proxy_protocol_listener_refuses_missing_header(self):
        """nginx really requires the header: without --send-proxy no answer."""
        nginx = self.start_nginx(proxy_protocol=True)
        with self.nodelayd(nginx.host, nginx.http_port) as ep:
            with self.assertRaises((http.client.RemoteDisconnected,
                                    ConnectionError)):
                http_get_from(CLIENT, ep.host, ep.port)
        wait_for("'broken header' in nginx's error log",
                 lambda: "broken header" in nginx.error_log_tail(50))


class AcceptProxyChain(E2ETestCase):
    """client -> nodelayd A (send v2) -> nodelayd B (accept, send v1) -> nginx."""

    def setUp(self):
        super().setUp()
        self.require(NGINX)
        self.nginx = self.enterContext(Nginx(files={"/who.txt": BODY},
                                             proxy_protocol=True))

    def test_chain_carries_client_address(self):
        n = self.nginx
        with self.nodelayd(n.host, n.http_port, "--accept-proxy", "on",
                           "--send-proxy", "v1") as b, \
                self.nodelayd(b.host, b.port, "--send-proxy", "v2") as a:
            status, body, client_port = http_get_from(CHAIN_CLIENT, a.host,
                                                      a.port)
            self.assertEqual((status, body), (200, BODY))
            # B logs the announced client, not A.
            b.proc.wait_for_line(
                rf"client={re.escape(CHAIN_CLIENT)}:{client_port} .*"
                r"close=completed", LOG_WAIT_S)
        entry = wait_for("nginx access log entry", n.access_log_entries)[0]
        self.assertEqual(entry["proxy_addr"], CHAIN_CLIENT, entry)
        self.assertEqual(entry["proxy_port"], str(client_port), entry)
        # B passes on the destination A announced: A's address, not its own.
        self.assertEqual(entry["proxy_server_port"], str(a.port), entry)
        self.assertEqual(entry["remote_addr"], PROXY_SIDE, entry)

    def test_header_in_pieces_then_payload(self):
        """A header split over several segments, the request right behind
        its CRLF: B takes exactly the header and relays every byte after."""
        n = self.nginx
        with self.nodelayd(n.host, n.http_port, "--accept-proxy", "on",
                           "--send-proxy", "v2") as b:
            with connect_from(CHAIN_CLIENT, b.host, b.port) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for piece in (b"PROXY TCP4 192.0.2.", b"7 198.51.100.1 ",
                              b"4711 80\r",
                              b"\nGET /who.txt HTTP/1.1\r\nHost: x\r\n",
                              b"Connection: close\r\n\r\n"):
                    s.sendall(piece)
                    time.sleep(0.05)
                reply = b""
                while chunk := s.recv(65536):
                    reply += chunk
        self.assertTrue(reply.startswith(b"HTTP/1.1 200 "), reply[:200])
        self.assertTrue(reply.endswith(b"\r\n\r\n" + BODY), reply[-200:])
        entry = wait_for("nginx access log entry", n.access_log_entries)[0]
        self.assertEqual((entry["proxy_addr"], entry["proxy_port"]),
                         ("192.0.2.7", "4711"), entry)
        self.assertEqual((entry["proxy_server_addr"],
                          entry["proxy_server_port"]),
                         ("198.51.100.1", "80"), entry)

    def test_client_without_header_is_reset(self):
        n = self.nginx
        with self.nodelayd(n.host, n.http_port, "--accept-proxy", "on",
                           "--send-proxy", "v1") as b:
            with connect_from(CHAIN_CLIENT, b.host, b.port) as s:
                s.sendall(b"GET /who.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                with self.assertRaises(ConnectionResetError):
                    s.recv(65536)
            b.proc.wait_for_line(r"no valid PROXY header: not a PROXY "
                                 r"protocol header", LOG_WAIT_S)
            b.proc.wait_for_line(r"close=proxy-header", LOG_WAIT_S)
        self.assertEqual(n.access_log_entries(), [])


if __name__ == "__main__":
    import unittest
    unittest.main()
