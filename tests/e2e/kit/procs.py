"""Child process lifecycle: start, watch stderr, always stop.

Why: the tests and benchmarks start real daemons (dovecot, nginx, haproxy,
socat, nodelayd).  Each runs in its own session/process group so that a fork
(socat) or worker (nginx, dovecot) is stopped with it, and each is stopped on
every exit path: the context manager, and an atexit hook as a last resort.
Stop sends SIGTERM to the leader first (nodelayd must exit 0 on it), then
SIGKILL to the whole group after a bounded wait.
"""

from __future__ import annotations

import atexit
import collections
import os
import re
import signal
import subprocess
import threading
import time
from typing import IO, Sequence

_live: "set[Proc]" = set()
_live_lock = threading.Lock()


class Proc:
    """One child process; use as a context manager.

    stderr is drained by a thread into `lines` (last 500 kept) and, when
    `log_path` is given, appended to that file, so the child never blocks on a
    full pipe and the output is there for diagnostics.  Lines matching `watch`
    are also kept in `watched`, all of them: what must not be missed even when
    it scrolled out of `lines`.
    """

    def __init__(self, argv: Sequence[str], *, name: str | None = None,
                 log_path: str | None = None, env: dict | None = None,
                 cwd: str | None = None, stop_timeout: float = 5.0,
                 watch: re.Pattern | None = None):
        self.argv = [str(a) for a in argv]
        self.name = name or os.path.basename(self.argv[0])
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.stop_timeout = stop_timeout
        self.popen: subprocess.Popen | None = None
        self.lines: collections.deque[str] = collections.deque(maxlen=500)
        self.watch = watch
        self.watched: list[str] = []
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None
        self._eof = False
        self.returncode: int | None = None
        self.killed = False  # True if SIGTERM was not enough

    # -- lifecycle -------------------------------------------------------
    def start(self) -> "Proc":
        self.popen = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=self.env, cwd=self.cwd,
            start_new_session=True)
        with _live_lock:
            _live.add(self)
        self._reader = threading.Thread(target=self._drain, daemon=True,
                                        name=f"stderr-{self.name}")
        self._reader.start()
        return self

    def pause(self) -> None:
        """SIGSTOP the process group (a no-op once it has exited)."""
        self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT the process group, undoing pause()."""
        self._signal_group(signal.SIGCONT)

    def _signal_group(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self) -> int | None:
        """SIGTERM, wait, then SIGKILL the group.  Returns the exit status."""
        p = self.popen
        if p is None:
            return None
        if p.poll() is None:
            # A paused process would hold SIGTERM pending until the timeout.
            self.resume()
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
        _kill_group(p.pid)
        try:
            p.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            pass
        if self._reader is not None:
            self._reader.join(2.0)
        if p.stderr is not None:
            p.stderr.close()
        self.returncode = p.returncode
        with _live_lock:
            _live.discard(self)
        return self.returncode

    def __enter__(self) -> "Proc":
        if self.popen is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def poll(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    # -- stderr ----------------------------------------------------------
    def _drain(self) -> None:
        assert self.popen is not None and self.popen.stderr is not None
        log: IO[str] | None = None
        if self.log_path:
            log = open(self.log_path, "a", encoding="utf-8", errors="replace")
        try:
            for raw in self.popen.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if log:
                    log.write(line + "\n")
                    log.flush()
                with self._cond:
                    self.lines.append(line)
                    if self.watch is not None and self.watch.search(line):
                        self.watched.append(line)
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            if log:
                log.close()
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def wait_for_line(self, pattern: str | re.Pattern,
                      timeout: float = 10.0) -> re.Match:
        """Wait until a stderr line matches `pattern`; return the match."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m
                if self._eof:
                    raise RuntimeError(
                        f"{self.name} exited (status {self.poll()}) without "
                        f"printing /{rx.pattern}/; stderr:\n" + self.tail())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(
                        f"{self.name}: no line /{rx.pattern}/ after "
                        f"{timeout:.1f}s; stderr:\n" + self.tail())
                self._cond.wait(min(left, 0.2))

    def tail(self, n: int = 30) -> str:
        return "\n".join(list(self.lines)[-n:])


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all() -> None:
    """Stop every Proc still running (atexit hook, also for signal handlers)."""
    with _live_lock:
        procs = list(_live)
    for p in procs:
        p.stop()


atexit.register(stop_all)
