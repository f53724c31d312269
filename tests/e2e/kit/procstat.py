"""What a started daemon costs: memory and CPU of its whole process tree.

Why: a proxy is judged by what it costs per connection and per byte, and
the peers are built differently -- nodelayd and HAProxy are one process,
nginx a master and a worker, socat forks a process per connection.  Every
Proc runs in its own session (procs.py), so the session id finds all of a
daemon's processes, forked children included, without trusting pid files.

Memory is PSS (proportional set size, /proc/PID/smaps_rollup): pages shared
between processes (socat's forks, nginx master and worker) are split among
them instead of being counted once per process as RSS would, so the sum
over a process tree is what the tree really holds.  CPU is utime + stime of
every live process plus cutime + cstime (children already reaped), from
/proc/PID/stat, in seconds (kernel clock ticks, 10 ms resolution).
"""

from __future__ import annotations

import dataclasses
import os

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[bytes] | None:
    """Fields of /proc/PID/stat after the command name (state first)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].split()


def session_pids(sid: int) -> list[int]:
    """Every process whose session id is `sid` (zombies included)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        f = _stat_fields(int(name))
        # f[0] state, f[1] ppid, f[2] pgrp, f[3] session
        if f is not None and len(f) > 3 and int(f[3]) == sid:
            out.append(int(name))
    return sorted(out)


@dataclasses.dataclass
class Memory:
    pss_kib: int = 0
    rss_kib: int = 0
    processes: int = 0


def memory(pids) -> Memory:
    """Sum of Pss and Rss over `pids` (processes that vanished are skipped)."""
    m = Memory()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
                text = f.read()
        except OSError:
            continue
        if not text:  # zombie: no address space left
            continue
        m.processes += 1
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            if key == "Pss":
                m.pss_kib += int(rest.split()[0])
            elif key == "Rss":
                m.rss_kib += int(rest.split()[0])
    return m


def session_memory(sid: int) -> Memory:
    return memory(session_pids(sid))


def cpu_seconds(pids) -> float:
    """utime + stime + cutime + cstime summed over `pids`, in seconds.

    A child that was reaped moved its time into its parent's cutime/cstime
    and is no longer listed, so nothing is counted twice."""
    ticks = 0
    for pid in pids:
        f = _stat_fields(pid)
        if f is None or len(f) < 15:
            continue
        # fields 14-17 of stat(5) = f[11..14]: utime stime cutime cstime
        ticks += sum(int(x) for x in f[11:15])
    return ticks / _CLK_TCK


def session_cpu_seconds(sid: int) -> float:
    return cpu_seconds(session_pids(sid))


def loadavg() -> str:
    """The machine's 1, 5 and 15 minute load averages ("?" if unknown):
    whatever else runs during a measurement skews it."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"
