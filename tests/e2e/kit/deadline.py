"""A hard wall-clock bound for a block of code (main thread only).

Why: an e2e test that talks to real daemons must not hang forever if a
proxy stalls or a daemon never answers; socket timeouts cover single calls,
this covers the whole test.  SIGALRM raises TimeoutError in the main thread,
so the usual context managers still stop every process.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator


@contextlib.contextmanager
def deadline(seconds: float, what: str = "block") -> Iterator[None]:
    def on_alarm(signum, frame):
        raise TimeoutError(f"{what} exceeded its {seconds:g}s deadline")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
