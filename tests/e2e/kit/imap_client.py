"""imaplib APPEND workload, shared by tests and bench.

Why: imaplib sends an APPEND literal and its closing CRLF in two send()
calls with Nagle on -- the exact client behaviour that stalls 40 ms per
message behind a proxy that delays its ACKs.  Messages are numbered and
deterministic so the receiving side can be checked byte for byte.
"""

from __future__ import annotations

import imaplib
import time


def message(i: int, size: int = 300) -> bytes:
    """Message number i: CRLF line endings, ~`size` bytes, unique content."""
    head = (f"From: sender@example.test\r\nTo: test@example.test\r\n"
            f"Subject: nodelayd e2e message {i}\r\n"
            f"Message-ID: <{i}.e2e@nodelayd.test>\r\n\r\n").encode()
    line = f"line of message {i:06d} ".encode()
    body = b""
    while len(head) + len(body) < size:
        body += line + b"." * max(0, 60 - len(line)) + b"\r\n"
    return head + body


def append_messages(host: str, port: int, user: str, password: str,
                    count: int, first: int = 0, size: int = 300,
                    timeout: float = 30.0, mailbox: str = "INBOX") -> float:
    """Log in, APPEND `count` messages, log out.  Returns seconds spent in
    the APPEND loop only (login/logout excluded)."""
    imap = imaplib.IMAP4(host, port, timeout=timeout)
    try:
        imap.login(user, password)
        t0 = time.perf_counter()
        for i in range(first, first + count):
            typ, data = imap.append(mailbox, None, None, message(i, size))
            if typ != "OK":
                raise RuntimeError(f"APPEND {i} failed: {typ} {data}")
        elapsed = time.perf_counter() - t0
    finally:
        try:
            imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    return elapsed


def mailbox_count(host: str, port: int, user: str, password: str,
                  mailbox: str = "INBOX", timeout: float = 30.0) -> int:
    imap = imaplib.IMAP4(host, port, timeout=timeout)
    try:
        imap.login(user, password)
        typ, data = imap.select(mailbox, readonly=True)
        if typ != "OK":
            raise RuntimeError(f"SELECT failed: {typ} {data}")
        return int(data[0])
    finally:
        try:
            imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def fetch_message(host: str, port: int, user: str, password: str,
                  seq: int, mailbox: str = "INBOX", timeout: float = 30.0) -> bytes:
    """Raw bytes (BODY.PEEK[]) of message number `seq` (1-based)."""
    imap = imaplib.IMAP4(host, port, timeout=timeout)
    try:
        imap.login(user, password)
        imap.select(mailbox, readonly=True)
        typ, data = imap.fetch(str(seq), "(BODY.PEEK[])")
        if typ != "OK" or not data or not isinstance(data[0], tuple):
            raise RuntimeError(f"FETCH {seq} failed: {typ} {data}")
        return data[0][1]
    finally:
        try:
            imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
