"""A private nginx: an HTTP server of fixed files and/or a stream proxy.

Why: nginx is both a real keep-alive HTTP backend for byte-exactness tests and,
with its stream module, a peer TCP proxy for the bench.  Prefix, config, pid,
logs and temp paths all live in a temp dir; it runs in the foreground
(`daemon off;`) with one worker.  Every response carries X-Connection (nginx's
connection serial number) so a client can prove keep-alive was used.  With
proxy_protocol=True the HTTP listener requires a PROXY protocol header; with
access_log=True (implied by proxy_protocol) each request is logged as one JSON
line with the PROXY header's and the TCP peer's addresses (access_log_entries).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Iterator, Mapping

from .endpoint import Endpoint
from .ports import LOOPBACK, free_port, wait_listening
from .procs import Proc
from .tmpdirs import private_dir

NGINX = "/usr/sbin/nginx"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

_MAIN = """\
{load_module}
worker_processes 1;
{rlimit}
pid {d}/nginx.pid;
error_log {d}/error.log info;
{user}
events {{
    worker_connections {worker_connections};
}}
{http}
{stream}
"""

_ACCESS_LOG = """\
log_format addresses escape=json '{{"proxy_addr":"$proxy_protocol_addr",'
        '"proxy_port":"$proxy_protocol_port",'
        '"proxy_server_addr":"$proxy_protocol_server_addr",'
        '"proxy_server_port":"$proxy_protocol_server_port",'
        '"remote_addr":"$remote_addr","remote_port":"$remote_port",'
        '"request":"$request","status":"$status"}}';
    access_log {d}/access.log addresses;"""

_HTTP = """\
http {{
    {access_log}
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    default_type application/octet-stream;
    keepalive_timeout 600s;
    keepalive_requests 100000;
    server {{
        listen {host}:{port}{listen_params};
        root {d}/html;
        location / {{
            add_header X-Connection $connection always;
        }}
    }}
}}
"""

_STREAM = """\
stream {{
    server {{
        listen {host}:{port};
        proxy_pass {up};
        proxy_connect_timeout 5s;
        proxy_timeout 600s;
    }}
}}
"""


class Nginx:
    """Context manager.

    files: URL path -> body served over HTTP on `http_port` (no HTTP server
    when None).  stream_upstream: (host, port) to proxy raw TCP to from
    `stream_port` (no stream block when None).
    """

    def __init__(self, files: Mapping[str, bytes] | None = None,
                 stream_upstream: tuple[str, int] | None = None,
                 http_port: int = 0, stream_port: int = 0,
                 proxy_protocol: bool = False, access_log: bool = False,
                 worker_connections: int = 1024):
        self.worker_connections = worker_connections
        self.files = dict(files) if files is not None else None
        self.proxy_protocol = proxy_protocol
        self.access_log = access_log or proxy_protocol
        self.stream_upstream = stream_upstream
        self.host = LOOPBACK
        self.http_port = (http_port or free_port()) if files is not None else 0
        self.stream_port = ((stream_port or free_port())
                            if stream_upstream is not None else 0)
        self.dir = ""
        self.proc: Proc | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "Nginx":
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _start(self) -> None:
        d = self.dir = self._stack.enter_context(private_dir("nginx"))
        os.makedirs(os.path.join(d, "tmp"))
        http = stream = ""
        if self.files is not None:
            for path, body in self.files.items():
                full = os.path.join(d, "html", path.lstrip("/"))
                os.makedirs(os.path.dirname(full), mode=0o755, exist_ok=True)
                with open(full, "wb") as f:
                    f.write(body)
                os.chmod(full, 0o644)
            os.chmod(os.path.join(d, "html"), 0o755)
            http = _HTTP.format(
                d=d, host=self.host, port=self.http_port,
                listen_params=" proxy_protocol" if self.proxy_protocol else "",
                access_log=(_ACCESS_LOG.format(d=d) if self.access_log
                            else "access_log off;"))
        if self.stream_upstream is not None:
            uh, up = self.stream_upstream
            uh = f"[{uh}]" if ":" in uh else uh
            stream = _STREAM.format(host=self.host, port=self.stream_port,
                                    up=f"{uh}:{up}")
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(_MAIN.format(
                d=d, http=http, stream=stream,
                worker_connections=self.worker_connections,
                rlimit=(f"worker_rlimit_nofile {self.worker_connections + 64};"
                        if self.worker_connections > 1024 else ""),
                load_module=(f"load_module {STREAM_MODULE};" if stream else ""),
                # As root, workers would run as nobody; the temp dir is
                # world-readable, so that works, but naming it keeps the
                # config independent of nginx's compiled-in default.
                user=("user nobody nogroup;" if os.geteuid() == 0 else "")))
        self.proc = Proc([NGINX, "-p", d, "-c", conf, "-e", f"{d}/error.log",
                          "-g", "daemon off;"], name="nginx",
                         log_path=os.path.join(d, "nginx.stderr"))
        self._stack.enter_context(self.proc)
        try:
            for port in (self.http_port, self.stream_port):
                if port:
                    wait_listening(port, 10.0, self.proc.popen, "nginx")
        except RuntimeError as e:
            raise RuntimeError(f"{e}\n{self.proc.tail()}\n"
                               f"{self.error_log_tail()}") from None

    def access_log_entries(self) -> list[dict]:
        """Requests logged so far (access_log=True), oldest first."""
        try:
            with open(os.path.join(self.dir, "access.log"),
                      encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def error_log_tail(self, n: int = 20) -> str:
        try:
            with open(os.path.join(self.dir, "error.log"),
                      encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class NginxStream:
    """Peer proxy launcher: nginx's stream module, one worker.  capacity:
    concurrent client connections it must accept (each takes two of the
    worker's connections); default 1024 worker connections."""

    name = "nginx-stream"
    binary = NGINX

    def __init__(self, capacity: int | None = None):
        self.capacity = capacity

    @contextlib.contextmanager
    def start(self, listen_port: int, upstream_host: str,
              upstream_port: int) -> Iterator[Endpoint]:
        wc = max(1024, 2 * self.capacity + 64) if self.capacity else 1024
        with Nginx(stream_upstream=(upstream_host, upstream_port),
                   stream_port=listen_port, worker_connections=wc) as n:
            yield Endpoint(self.name, n.host, n.stream_port, n.proc)
