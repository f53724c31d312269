"""Private temporary directories for the servers the kit starts.

Why: every daemon gets its own config, state, logs and data under one temp
dir, never /etc or /var.  Daemons that drop privileges (dovecot's login
processes, nginx workers) must be able to traverse it, hence mode 0755.  Set
NODELAYD_E2E_KEEP=1 to keep the directories for post-mortem reading.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from typing import Iterator


@contextlib.contextmanager
def private_dir(prefix: str) -> Iterator[str]:
    path = tempfile.mkdtemp(prefix=f"nodelayd-{prefix}-")
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        if os.environ.get("NODELAYD_E2E_KEEP"):
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)
