"""The kit's own guarantees that every e2e test relies on.

A sanitizer report on nodelayd's stderr must fail the test even when the daemon carries on
and exits 0 (TSan does by default, UBSan can): NodelaydProc raises SanitizerReport once the
process has stopped. Stand-in processes print the report lines here; no build needed.

Run: python3 -m unittest -v tests/e2e/test_kit.py
"""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kit import nodelayd, ports, proxies  # noqa: E402
from kit.testing import E2ETestCase  # noqa: E402


def shell(script: str) -> list[str]:
    return ["sh", "-c", script]


class SanitizerReports(E2ETestCase):
    TIMEOUT = 20.0

    def test_each_kind_of_report_fails_once_stopped(self):
        for first_line in ("==7==ERROR: AddressSanitizer: heap-use-after-free on address 0x1",
                           "src/pump.cpp:10:5: runtime error: signed integer overflow",
                           "WARNING: ThreadSanitizer: data race (pid=7)",
                           "==7==ERROR: LeakSanitizer: detected memory leaks"):
            with self.subTest(first_line):
                # The report scrolls out of the kept tail; it must still be found.
                script = f"echo '{first_line}' >&2; seq 1 2000 >&2; echo done >&2"
                with self.assertRaises(nodelayd.SanitizerReport) as caught:
                    with nodelayd.NodelaydProc(shell(script)) as proc:
                        proc.wait_for_line("^done$", 5)
                self.assertIn(first_line, str(caught.exception))

    def test_clean_output_passes(self):
        with nodelayd.NodelaydProc(shell("echo 'info route=imap listening on 127.0.0.1:1' >&2;"
                                         "echo done >&2")) as proc:
            proc.wait_for_line("^done$", 5)
        self.assertEqual(proc.returncode, 0)

    def test_check_sanitizers_reads_text(self):
        nodelayd.check_sanitizers("info started\ninfo stopped\n")
        with self.assertRaises(nodelayd.SanitizerReport):
            nodelayd.check_sanitizers("info started\nx.cpp:3:1: runtime error: load of null\n")


class Launchers(E2ETestCase):
    def test_a_variant_replaces_the_option_it_sets(self):
        # nodelayd refuses an option given twice, so a target that sets one the common
        # bench arguments carry must replace it, in either spelling.
        for common in (["--threads", "1", "--log-sessions", "off"],
                       ["--log-sessions=off", "--threads", "1"]):
            with self.subTest(common=common):
                args = proxies.launcher("nodelayd-logged", common).extra_args
                self.assertEqual(args.count("--log-sessions"), 1, args)
                self.assertFalse([a for a in args if a.startswith("--log-sessions=")], args)
                self.assertEqual(args[args.index("--log-sessions") + 1], "on")
                self.assertEqual(args[args.index("--threads") + 1], "1")


class Ports(E2ETestCase):
    def test_open_connections_counts_what_the_server_has_not_closed(self):
        # IperfServer.wait_idle relies on it: the bench pauses a proxy only once the backend
        # has closed the connections of the run it relayed.
        with socket.create_server((ports.LOOPBACK, 0)) as listener:
            port = listener.getsockname()[1]
            self.assertIn(port, ports.listening_ports())
            self.assertEqual(ports.open_connections(port), 0, "a listener is not a connection")
            with socket.create_connection((ports.LOOPBACK, port), 5) as client:
                accepted, _ = listener.accept()
                self.assertEqual(ports.open_connections(port), 1)
                client.shutdown(socket.SHUT_WR)
                self.assertEqual(accepted.recv(1), b"")
                self.assertEqual(ports.open_connections(port), 1, "CLOSE_WAIT is still open")
                accepted.close()
                self.assertEqual(ports.open_connections(port), 0, "closed by the server")
