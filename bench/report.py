"""Markdown (and JSON) report of a bench run.

Why: results are only comparable with their context -- command line, date,
kernel, versions of every peer -- so that is written next to the numbers, in
bench/results/latest.md for people and latest.json for tools.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from typing import Sequence

from kit import nodelayd, procstat, proxies

from runner import ScenarioResult, best_peer, speedup


def _first_line(argv: Sequence[str]) -> str:
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10, check=False)
        out = p.stdout.decode("utf-8", "replace").strip().splitlines()
        return out[0] if out else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"


def _matching_line(argv: Sequence[str], needle: str) -> str:
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        if needle in line:
            return line.strip()
    return "?"


def environment(argv: Sequence[str]) -> dict:
    nb = nodelayd.binary()
    if nodelayd.available():
        st = os.stat(nb)
        nb_desc = (f"{nb} (built "
                   f"{datetime.datetime.fromtimestamp(st.st_mtime):%Y-%m-%d %H:%M})")
    else:
        nb_desc = f"{nb} (missing)"
    return {
        "command": shlex.join(argv),
        "date": datetime.datetime.now(datetime.timezone.utc)
                        .strftime("%Y-%m-%d %H:%M:%S UTC"),
        "kernel": f"{platform.system()} {platform.release()} "
                  f"{platform.machine()}",
        "cpus": os.cpu_count(),
        "loadavg_start": procstat.loadavg(),
        "python": sys.version.split()[0],
        "nodelayd": nb_desc,
        "haproxy": _first_line(["haproxy", "-v"]),
        "nginx": _first_line(["nginx", "-v"]),
        "socat": _matching_line(["socat", "-V"], "socat version"),
        "dovecot": _first_line(["dovecot", "--version"]),
        "curl": _first_line(["curl", "--version"]),
        "iperf3": _first_line(["iperf3", "--version"]),
        "wrk": _first_line(["wrk", "--version"]),
    }


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    if v < 0.1:
        return f"{v:.3f}"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def _raw(v: float) -> str:
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.4g}"


def _x(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}×"


def markdown(env: dict, runs: Sequence[ScenarioResult], reps: int) -> str:
    out = ["# nodelayd bench results", ""]
    out += [f"- command: `{env['command']}`",
            f"- date: {env['date']}",
            f"- kernel: {env['kernel']}, {env['cpus']} CPUs, "
            f"Python {env['python']}; load average at start "
            f"{env.get('loadavg_start', '?')}",
            f"- nodelayd: {env['nodelayd']}",
            f"- peers: {env['haproxy']}; {env['nginx']}; {env['socat']}",
            f"- servers/clients: Dovecot {env['dovecot']}; "
            f"{env['curl']}; {env.get('iperf3', '?')}; "
            f"{env.get('wrk', '?')}",
            f"- repetitions: {reps}, targets interleaved (order rotates "
            "each repetition); value = median of the repetitions",
            "- speed-up columns: how many times faster than the reference "
            "(>1 = faster); best peer = best median among "
            + ", ".join(proxies.PEERS),
            ""]
    for r in runs:
        sc = r.scenario
        better = "higher" if sc.higher_is_better else "lower"
        bp = best_peer(r, proxies.PEERS)
        out += [f"## {sc.name}: {sc.title}", "",
                f"{sc.describe()}. Unit: {sc.unit} ({better} is better). "
                f"Best peer: {bp or '—'}. Took {r.seconds:.0f} s (load "
                f"average before: {r.loadavg}).", "",
                f"| target | median {sc.unit} | min | max | vs direct "
                f"| vs best peer | runs |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for t, tr in r.results.items():
            vals = tr.values
            note = ""
            if tr.error:
                note = " ⚠ " + " / ".join(
                    l.strip() for l in tr.error.splitlines() if l.strip()
                ).replace("|", "\\|")
            if t.startswith("nodelayd") and tr.exit_status not in (None, 0):
                note += f" ⚠ exit status {tr.exit_status} after SIGTERM"
            if tr.note:
                note += f" ({tr.note})".replace("|", "\\|")
            out.append(
                f"| {t}{note} | {_fmt(tr.median)} | "
                f"{_fmt(min(vals) if vals else None)} | "
                f"{_fmt(max(vals) if vals else None)} | "
                f"{_x(speedup(r, t, 'direct'))} | {_x(speedup(r, t, bp))} | "
                f"{len(vals)} |")
        out.append("")
    out += ["<details><summary>raw values</summary>", "", "```"]
    for r in runs:
        for t, tr in r.results.items():
            out.append(f"{r.scenario.name:<5} {t:<13} "
                       + (" ".join(_raw(v) for v in tr.values)
                          or f"({tr.note or tr.error or 'no value'})"))
    out += ["```", "", "</details>", ""]
    return "\n".join(out)


def as_json(env: dict, runs: Sequence[ScenarioResult], reps: int) -> str:
    return json.dumps({
        "environment": env, "reps": reps,
        "scenarios": [{
            "name": r.scenario.name, "title": r.scenario.title,
            "unit": r.scenario.unit,
            "higher_is_better": r.scenario.higher_is_better,
            "workload": r.scenario.describe(),
            "seconds": r.seconds, "loadavg_before": r.loadavg,
            "targets": {t: {"values": tr.values, "median": tr.median,
                            "error": tr.error, "note": tr.note,
                            "exit_status": tr.exit_status}
                        for t, tr in r.results.items()},
        } for r in runs]}, indent=2, ensure_ascii=False)
