"""IMAP APPEND through nodelayd to a real Dovecot.

imaplib sends each APPEND literal and its final CRLF in two send() calls
with Nagle on.  Dovecot itself re-arms TCP_QUICKACK after every flush, so a
direct connection does not stall; a proxy in between that delays its ACK to
the client holds the CRLF for ~40 ms per message (haproxy, nginx stream and
socat all do).  nodelayd's client-side quick-ACK must remove that, and the
second test proves the first could fail: with --client-quickack off the
stall is back.

Run: NODELAYD_BIN=build/nodelayd python3 -m unittest -v tests/e2e/test_imap.py
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kit import imap_client  # noqa: E402
from kit.dovecot import DOVECOT, Dovecot  # noqa: E402
from kit.testing import E2ETestCase  # noqa: E402

COUNT = 100
FAST_BOUND_S = 2.0   # a stall per message would be 100 x ~40 ms = 4 s+
STALL_FLOOR_S = 3.0  # what --client-quickack off must at least cost


class ImapAppendThroughNodelayd(E2ETestCase):
    TIMEOUT = 60.0

    def setUp(self):
        super().setUp()
        self.require(DOVECOT)
        self.dovecot = self.enterContext(Dovecot())

    def append_through_nodelayd(self, *args: str) -> float:
        dv = self.dovecot
        with self.nodelayd(dv.host, dv.port, *args) as ep:
            elapsed = imap_client.append_messages(
                ep.host, ep.port, dv.user, dv.password, COUNT)
            # Read one back through the proxy too (server -> client path).
            fetched = imap_client.fetch_message(
                ep.host, ep.port, dv.user, dv.password, COUNT)
        self.assertEqual(fetched, imap_client.message(COUNT - 1))
        self.assert_all_stored()
        return elapsed

    def assert_all_stored(self):
        dv = self.dovecot
        self.assertEqual(imap_client.mailbox_count(dv.host, dv.port, dv.user,
                                                   dv.password), COUNT)
        stored = sorted(dv.stored_messages())
        sent = sorted(imap_client.message(i) for i in range(COUNT))
        self.assertEqual(len(stored), COUNT)
        self.assertEqual(stored, sent, "maildir content differs from what "
                                       "was appended")

    def test_append_100_default_policies_no_stall(self):
        elapsed = self.append_through_nodelayd()
        print(f"\n  {COUNT} APPENDs via nodelayd (defaults): {elapsed:.3f}s "
              f"({COUNT / elapsed:.0f} msg/s)", file=sys.stderr)
        self.assertLess(elapsed, FAST_BOUND_S,
                        f"{COUNT} APPENDs took {elapsed:.2f}s: the client-side "
                        "delayed-ACK stall is back")

    def test_append_100_client_quickack_off_stalls(self):
        """Proves the test above can fail: same run, quick-ACK off."""
        t0 = time.perf_counter()
        elapsed = self.append_through_nodelayd("--client-quickack", "off")
        print(f"\n  {COUNT} APPENDs via nodelayd --client-quickack off: "
              f"{elapsed:.3f}s ({COUNT / elapsed:.0f} msg/s; total "
              f"{time.perf_counter() - t0:.1f}s)", file=sys.stderr)
        self.assertGreaterEqual(
            elapsed, STALL_FLOOR_S,
            f"{COUNT} APPENDs took only {elapsed:.2f}s with quick-ACK off: "
            "the stall did not reproduce, so the no-stall test proves nothing "
            "on this kernel")


if __name__ == "__main__":
    import unittest
    unittest.main()
