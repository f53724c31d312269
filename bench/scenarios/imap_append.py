"""(a) imaplib APPEND to a private Dovecot, messages per second.

Why: the motivating workload -- imaplib writes literal and CRLF in two
send() calls with Nagle on, so any hop that delays its ACK costs ~40 ms per
message.  Dovecot quick-ACKs by itself, so "direct" shows the no-stall rate.
"""

from __future__ import annotations

from kit import imap_client
from kit.dovecot import Dovecot
from kit.endpoint import Endpoint

from .base import Scenario, serving


class ImapAppend(Scenario):
    name = "imap"
    title = "imaplib APPEND to Dovecot"
    unit = "msg/s"
    higher_is_better = True

    def __init__(self, quick: bool):
        super().__init__(quick)
        self.count = 30 if quick else 100
        self.size = 300
        self._next = 0
        self._dovecot: Dovecot | None = None

    def describe(self) -> str:
        return (f"{self.count} APPENDs of ~{self.size} B per run, one "
                "connection, login/logout excluded")

    def server(self):
        self._dovecot = Dovecot()
        return serving(self._dovecot)

    def _append(self, ep: Endpoint, count: int) -> float:
        dv = self._dovecot
        assert dv is not None
        secs = imap_client.append_messages(ep.host, ep.port, dv.user,
                                           dv.password, count,
                                           first=self._next, size=self.size)
        self._next += count
        return secs

    def run_once(self, ep: Endpoint) -> float:
        return self.count / self._append(ep, self.count)

    def warmup(self, ep: Endpoint) -> None:
        self._append(ep, 3)


SCENARIO = ImapAppend
