"""The stats HTML page: self-contained, and rendered by a real browser.

1. GET / from the live daemon's stats endpoint is text/html with inline SVG
   and no external URL (no src/href/url() pointing off the page), and is
   served with a Content-Security-Policy that forbids external fetches.
2. After some traffic through a route, headless Chromium (Debian package
   chromium) loads the page and screenshots it: no CSP violation or uncaught
   script error on its console; the PNG must be a real PNG of the window
   size and clearly larger than a screenshot of a blank page.  It
   is copied to $NODELAYD_TEST_OUTPUT/stats-page.png (default
   build/test-output/stats-page.png) and its path printed.

Run: NODELAYD_BIN=build/nodelayd python3 -m unittest -v tests/e2e/test_stats_page.py
"""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kit.echo import EchoServer, ping_pong_p50, recv_exact  # noqa: E402
from kit.nodelayd import REPO_ROOT  # noqa: E402
from kit.testing import E2ETestCase  # noqa: E402
from kit.tmpdirs import private_dir  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
WINDOW = (1200, 900)
CHROMIUM_TIMEOUT_S = 60.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The page (text, numbers, an SVG chart) must add well over a blank page's
# PNG size (~5 KB at 1200x900); a page that failed to render would not.
MIN_GROWTH = 1.5


def fetch(url: str) -> tuple[int, dict, str]:
    with urllib.request.urlopen(url, timeout=5) as r:
        headers = {k.lower(): v for k, v in r.getheaders()}
        return r.status, headers, r.read().decode("utf-8")


def external_urls(html: str) -> list[str]:
    """Absolute or protocol-relative URLs the page would load or link to.

    XML namespace declarations (xmlns="http://www.w3.org/2000/svg") name a
    vocabulary and are never fetched, so they do not count.
    """
    text = re.sub(r"""\sxmlns(?::[\w-]+)?\s*=\s*(["'])[^"']*\1""", " ", html)
    found = re.findall(r"""(?i)\b(?:https?|ftp|wss?):\/\/[^\s"'<>)]*""", text)
    # Protocol-relative references in attributes and CSS.
    found += re.findall(
        r"""(?i)\b(?:src|href|action|formaction|poster|data|srcset)\s*=\s*["']?\s*(//[^\s"'>]*)""",
        text)
    found += re.findall(r"""(?i)url\(\s*["']?\s*(//[^)"']*)""", text)
    found += re.findall(r"""(?i)@import[^;]*""", text)
    return found


def png_size(path: str) -> tuple[int, int]:
    """(width, height) from the IHDR chunk; raises if not a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise AssertionError(f"{path} is not a PNG (starts {head[:16]!r})")
    return struct.unpack(">II", head[16:24])


def screenshot(url: str, out_png: str, workdir: str) -> list[str]:
    """Headless Chromium renders `url` into `out_png` (bounded; the whole
    process group is killed on timeout).  Returns the page's console
    problems: Content-Security-Policy violations and uncaught script errors."""
    profile = os.path.join(workdir, f"profile-{os.path.basename(out_png)}")
    os.makedirs(profile)
    log_path = out_png + ".log"
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--hide-scrollbars",
            # Console messages (CSP violations, script errors) to the log.
            "--enable-logging=stderr", "--log-level=0",
            f"--user-data-dir={profile}", f"--screenshot={out_png}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}", url]
    # Keep Chromium's caches and config out of the real home directory.
    env = dict(os.environ, HOME=profile, XDG_CONFIG_HOME=profile,
               XDG_CACHE_HOME=profile)
    with open(log_path, "wb") as log:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        try:
            rc = p.wait(CHROMIUM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            # Chromium leaves helper processes (zygote, renderer) behind
            # when killed; they share its process group.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            p.wait(5)
    if rc != 0 or not os.path.isfile(out_png):
        with open(log_path, "rb") as f:
            tail = f.read()[-3000:].decode("utf-8", "replace")
        raise AssertionError(
            f"chromium {'timed out' if rc is None else f'exited {rc}'} "
            f"rendering {url} (screenshot {'missing' if not os.path.isfile(out_png) else 'present'}); "
            f"output:\n{tail}")
    with open(log_path, "rb") as f:
        lines = f.read().decode("utf-8", "replace").splitlines()
    return [line for line in lines if ":CONSOLE" in line and re.search(
        r"Content Security Policy|Uncaught|Refused to", line)]


def output_dir() -> str:
    return os.environ.get("NODELAYD_TEST_OUTPUT") or os.path.join(
        REPO_ROOT, "build", "test-output")


class StatsPage(E2ETestCase):
    TIMEOUT = 150.0  # two Chromium runs of up to 60 s each, plus traffic

    def setUp(self):
        super().setUp()
        self.echo = self.enterContext(EchoServer())

    def push_traffic(self, ep) -> int:
        """Bulk echoes and a ping-pong through the route; returns sessions."""
        sessions = 0
        for n in (1000, 64 * 1024, 300 * 1024):
            with socket.create_connection((ep.host, ep.port), timeout=10) as s:
                payload = bytes((i * 13 + n) & 0xFF for i in range(n))
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(recv_exact(s, n), payload)
            sessions += 1
        ping_pong_p50(ep.host, ep.port, rounds=200)
        return sessions + 1

    def wait_recorded(self, ep, sessions: int) -> None:
        """Polls /stats until every session closed and was counted."""
        deadline = time.monotonic() + 10
        while True:
            _, _, body = fetch(ep.stats_url + "/stats")
            routes = json.loads(body)["routes"]
            total = sum(r["connections"]["total"] for r in routes)
            active = sum(r["connections"]["active"] for r in routes)
            if total >= sessions and active == 0:
                return
            self.assertLess(time.monotonic(), deadline,
                            f"sessions never closed: {routes}")
            time.sleep(0.05)

    def start(self):
        ep = self.enterContext(self.nodelayd(self.echo.host, self.echo.port))
        self.assertIsNotNone(
            ep.stats_url, "nodelayd logged no 'stats endpoint at http://...' "
            "line; stderr:\n" + ep.proc.tail())
        return ep

    def test_page_is_self_contained_html_with_svg(self):
        ep = self.start()
        self.wait_recorded(ep, self.push_traffic(ep))
        status, headers, html = fetch(ep.stats_url + "/")
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("content-type"), "text/html; charset=utf-8")
        self.assertIn("<svg", html)
        self.assertIn("</svg>", html)
        self.assertEqual(external_urls(html), [],
                         "the page refers to external URLs")
        csp = headers.get("content-security-policy", "")
        self.assertIn("default-src 'none'", csp)

    def test_page_renders_in_headless_chromium(self):
        self.require(CHROMIUM)
        ep = self.start()
        self.wait_recorded(ep, self.push_traffic(ep))
        with private_dir("chromium") as work:
            page_png = os.path.join(work, "stats-page.png")
            blank_png = os.path.join(work, "blank.png")
            problems = screenshot(ep.stats_url + "/", page_png, work)
            screenshot("about:blank", blank_png, work)
            self.assertEqual(problems, [],
                             "the page broke its Content-Security-Policy or "
                             "threw in Chromium")

            self.assertEqual(png_size(page_png), WINDOW)
            self.assertEqual(png_size(blank_png), WINDOW)
            page, blank = os.path.getsize(page_png), os.path.getsize(blank_png)
            self.assertGreater(
                page, blank * MIN_GROWTH,
                f"the page's screenshot ({page} B) is hardly larger than a "
                f"blank page's ({blank} B): did it render?")

            out = output_dir()
            os.makedirs(out, exist_ok=True)
            kept = os.path.join(out, "stats-page.png")
            shutil.copyfile(page_png, kept)
        print(f"\n  stats page screenshot: {kept} ({page} bytes; blank page "
              f"{blank} bytes)", file=sys.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
