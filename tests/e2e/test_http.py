"""HTTP/1.1 keep-alive through nodelayd: nginx bytes, split-write stall.

1. GETs through nodelayd to a real nginx return byte-exact bodies (a few
   bytes and a few hundred KB), all on one kept-alive upstream connection.
2. A backend that writes headers and body in two send() calls with Nagle on
   stalls ~40 ms per response when the proxy delays its ACK (the body waits
   for the ACK of the headers).  nodelayd's upstream quick-ACK must remove
   that; with --upstream-quickack off the stall must be back, proving the
   first test can fail.

Run: NODELAYD_BIN=build/nodelayd python3 -m unittest -v tests/e2e/test_http.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kit import http_client  # noqa: E402
from kit.nginx import NGINX, Nginx  # noqa: E402
from kit.splitwrite import DEFAULT_BODY, SplitWriteHTTP  # noqa: E402
from kit.testing import E2ETestCase  # noqa: E402

GETS = 50
FAST_BOUND_S = 1.0   # a stall per GET would be 50 x ~40 ms = 2 s+
STALL_FLOOR_S = 1.5  # what --upstream-quickack off must at least cost

SMALL = b"nodelayd says hello\n" * 17                       # 340 bytes
BIG = bytes((i * 31 + i // 251) % 256 for i in range(400 * 1024 + 17))


class NginxThroughNodelayd(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.require(NGINX)
        self.nginx = self.enterContext(
            Nginx(files={"/small.txt": SMALL, "/big.bin": BIG}))

    def test_keepalive_gets_are_byte_exact(self):
        paths = ["/small.txt", "/big.bin"] * 10 + ["/big.bin", "/small.txt"]
        with self.nodelayd(self.nginx.host, self.nginx.http_port) as ep:
            _, responses = http_client.get_many(ep.host, ep.port, paths)
        self.assertEqual(len(responses), len(paths))
        conns = set()
        for path, (status, headers, body) in zip(paths, responses):
            want = SMALL if path == "/small.txt" else BIG
            self.assertEqual(status, 200, path)
            self.assertEqual(int(headers["content-length"]), len(want), path)
            self.assertTrue(body == want, f"{path}: {len(body)} bytes differ "
                            f"from the {len(want)} served")
            conns.add(headers.get("x-connection"))
        self.assertEqual(len(conns), 1,
                         f"nginx saw connections {conns}: keep-alive broken")


class SplitWriteBackendThroughNodelayd(E2ETestCase):
    def setUp(self):
        super().setUp()
        self.backend = self.enterContext(SplitWriteHTTP())

    def fifty_gets(self, *args: str) -> float:
        b = self.backend
        with self.nodelayd(b.host, b.port, *args) as ep:
            elapsed, responses = http_client.get_many(ep.host, ep.port,
                                                      ["/"] * GETS)
        self.assertEqual([s for s, _, _ in responses], [200] * GETS)
        self.assertTrue(all(body == DEFAULT_BODY for _, _, body in responses))
        self.assertEqual(b.requests, GETS)
        self.assertEqual(b.connections, 1, "upstream keep-alive broken")
        self.assertEqual(b.errors, [])
        return elapsed

    def test_50_gets_no_stall(self):
        elapsed = self.fifty_gets()
        print(f"\n  {GETS} split-write GETs via nodelayd (defaults): "
              f"{elapsed * 1000:.0f} ms", file=sys.stderr)
        self.assertLess(elapsed, FAST_BOUND_S,
                        f"{GETS} GETs took {elapsed:.2f}s: the upstream "
                        "delayed-ACK stall is back")

    def test_50_gets_upstream_quickack_off_stalls(self):
        """Proves the test above can fail: same run, quick-ACK off."""
        elapsed = self.fifty_gets("--upstream-quickack", "off")
        print(f"\n  {GETS} split-write GETs via nodelayd --upstream-quickack "
              f"off: {elapsed * 1000:.0f} ms", file=sys.stderr)
        self.assertGreaterEqual(
            elapsed, STALL_FLOOR_S,
            f"{GETS} GETs took only {elapsed:.2f}s with quick-ACK off: the "
            "stall did not reproduce, so the no-stall test proves nothing")


if __name__ == "__main__":
    import unittest
    unittest.main()
