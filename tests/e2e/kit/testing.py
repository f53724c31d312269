"""unittest glue for the e2e tests: deadlines, prerequisites, nodelayd.

Why: every e2e test needs the same three things -- a bound on its run time,
a clear skip (or, with NODELAYD_E2E_REQUIRE=1, a failure) when a binary is
missing, and a nodelayd in front of a server that is checked to exit 0 on
SIGTERM once the test is done with it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import unittest
from typing import Iterator

from . import nodelayd
from .deadline import deadline
from .endpoint import Endpoint


class E2ETestCase(unittest.TestCase):
    TIMEOUT = 60.0  # seconds per test, setUp and cleanup included

    def setUp(self) -> None:
        self.enterContext(deadline(self.TIMEOUT, self.id()))

    def require(self, *binaries: str) -> None:
        """Skip (or fail if NODELAYD_E2E_REQUIRE=1) unless all exist."""
        missing = [b for b in binaries
                   if not (os.access(b, os.X_OK) if os.path.sep in b
                           else shutil.which(b))]
        if missing:
            msg = "missing: " + ", ".join(missing)
            if os.environ.get("NODELAYD_E2E_REQUIRE") == "1":
                self.fail(msg)
            self.skipTest(msg)

    @contextlib.contextmanager
    def nodelayd(self, upstream_host: str, upstream_port: int,
                 *args: str) -> Iterator[Endpoint]:
        """nodelayd on a free loopback port in front of the upstream."""
        self.require(nodelayd.binary())
        with nodelayd.Nodelayd(args).start(0, upstream_host,
                                           upstream_port) as ep:
            yield ep
        assert ep.proc is not None
        self.assertFalse(ep.proc.killed,
                         "nodelayd ignored SIGTERM; stderr:\n" + ep.proc.tail())
        self.assertEqual(ep.proc.returncode, 0,
                         "nodelayd exit status after SIGTERM; stderr:\n"
                         + ep.proc.tail())
