"""A private Dovecot IMAP server on 127.0.0.1 for one test or bench run.

Why: the IMAP APPEND stall (imaplib writes the literal and its CRLF in two
send() calls with Nagle on; the CRLF waits for an ACK the receiver delays) is
the motivating case of nodelayd, so it is tested against the real server.
Dovecot 2.3 itself re-arms TCP_QUICKACK after each flush, so a direct
connection does not stall -- a proxy that delays its ACKs does.

Everything lives in a temp dir: config, base_dir, state, log and the maildir;
one passwd-file user with a plain password; no SSL, no chroot.  It works as
root (login processes run as dovenull, mail as nobody) and as an ordinary
user (everything runs as that user).  With haproxy=True the IMAP listener
requires a PROXY protocol header (v1 or v2) from 127.0.0.0/8 and logs the
address in it as rip=.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd

from .ports import LOOPBACK, free_port, wait_listening
from .procs import Proc
from .tmpdirs import private_dir

DOVECOT = "/usr/sbin/dovecot"

_CONF = """\
# Private test instance; see tests/e2e/kit/dovecot.py.
instance_name = nodelayd-e2e-{port}
base_dir = {d}/run
state_dir = {d}/state
protocols = imap
listen = {host}
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{d}/mail/%u
mail_save_crlf = yes
# The bench measures network latency, not the disk: no fsync per message.
mail_fsync = never
mail_max_userip_connections = 1000
{haproxy_trusted}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/passwd
}}
# No chroot: an unprivileged user cannot chroot, and nothing is gained here.
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {host}
    port = {port}
    {haproxy_listener}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


class Dovecot:
    """Context manager; attributes host, port, user, password, log_path."""

    def __init__(self, port: int = 0, user: str = "test",
                 password: str = "secret", host: str = LOOPBACK,
                 haproxy: bool = False):
        self.host = host
        self.haproxy = haproxy
        self.port = port or free_port(host)
        self.user = user
        self.password = password
        self._stack = contextlib.ExitStack()
        self.dir = ""
        self.proc: Proc | None = None

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "dovecot.log")

    @property
    def maildir(self) -> str:
        return os.path.join(self.dir, "mail", self.user)

    def __enter__(self) -> "Dovecot":
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _start(self) -> None:
        d = self.dir = self._stack.enter_context(private_dir("dovecot"))
        if os.geteuid() == 0:
            login_user, internal_user, internal_group = \
                "dovenull", "dovecot", "dovecot"
            mail = pwd.getpwnam("nobody")
            uid, gid = mail.pw_uid, mail.pw_gid
        else:
            me = pwd.getpwuid(os.geteuid()).pw_name
            login_user = internal_user = me
            internal_group = grp.getgrgid(os.getegid()).gr_name
            uid, gid = os.geteuid(), os.getegid()
        os.makedirs(os.path.join(d, "mail"))
        os.chown(os.path.join(d, "mail"), uid, gid)
        for sub in ("run", "state"):
            os.makedirs(os.path.join(d, sub), mode=0o755)
        with open(os.path.join(d, "passwd"), "w", encoding="utf-8") as f:
            f.write(f"{self.user}:{{PLAIN}}{self.password}:{uid}:{gid}::"
                    f"{d}/mail/{self.user}::\n")
        conf = os.path.join(d, "dovecot.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(_CONF.format(d=d, host=self.host, port=self.port,
                                 uid=uid, gid=gid,
                                 login_user=login_user,
                                 internal_user=internal_user,
                                 internal_group=internal_group,
                                 haproxy_trusted=(
                                     "haproxy_trusted_networks = 127.0.0.0/8"
                                     if self.haproxy else ""),
                                 haproxy_listener=(
                                     "haproxy = yes" if self.haproxy else "")))
        self.proc = Proc([DOVECOT, "-F", "-c", conf], name="dovecot",
                         log_path=os.path.join(d, "dovecot.stderr"))
        self._stack.enter_context(self.proc)
        try:
            wait_listening(self.port, 15.0, self.proc.popen, "dovecot")
        except RuntimeError as e:
            raise RuntimeError(f"{e}\n{self.log_tail()}") from None

    def log_tail(self, n: int = 30) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stored_messages(self) -> list[bytes]:
        """Raw bytes of every message in the user's INBOX maildir."""
        out = []
        for sub in ("new", "cur"):
            path = os.path.join(self.maildir, sub)
            if not os.path.isdir(path):
                continue
            for name in sorted(os.listdir(path)):
                with open(os.path.join(path, name), "rb") as f:
                    out.append(f.read())
        return out

