"""Markdown (and JSON) report of a bench run.

Why: results are only comparable with their context -- command line, date,
kernel, versions of every peer -- so that is written next to the numbers, in
bench/results/latest.md for people and latest.json for tools.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from typing import Callable, Mapping, Sequence

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


# --- issue 5's targets --------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Goal:
    """One of issue 5's targets, on one table (scenario or metric) of a run.

    Met when   nodelayd <op> limit × ref          (ref given, added=False)
               nodelayd − direct <op> limit × (ref − direct)   (added=True)
               nodelayd <op> limit                (ref None: an absolute bound)
    with the medians of one run; <op> is ≥ if at_least else ≤."""
    text: str
    scenario: str
    ref: str | None
    limit: float
    at_least: bool
    added: bool = False


GOALS = (
    Goal("one-stream throughput (iperf3) ≥ 1.5× HAProxy's", "bulk-1",
         "haproxy", 1.5, True),
    Goal("keep-alive req/s ≥ 1.25× HAProxy's", "http-keepalive", "haproxy",
         1.25, True),
    Goal("connection-per-request req/s ≥ 1.25× HAProxy's", "http-close",
         "haproxy", 1.25, True),
    Goal("latency added to a small ping-pong, p50 (proxied − direct) "
         "≤ 0.7× HAProxy's", "pingpong-p50", "haproxy", 0.7, False,
         added=True),
    Goal("latency added to a small ping-pong, p99 (proxied − direct) "
         "≤ 0.7× HAProxy's", "pingpong-p99", "haproxy", 0.7, False,
         added=True),
    Goal("≤ 1 KiB of process memory (PSS) per idle connection",
         "idle-memory-pss", None, 1.0, False),
    Goal("imaplib APPEND msg/s ≥ 0.9× direct", "imap", "direct", 0.9, True),
    Goal("write-write-read round ≤ 1.5× direct (Nagle on)", "wwr", "direct",
         1.5, False),
    Goal("write-write-read round ≤ 1.5× direct (both ends at once, Nagle on)",
         "wwr-both", "direct", 1.5, False),
    Goal("write-write-read round ≤ 1.5× direct (Nagle off)", "wwr-nodelay",
         "direct", 1.5, False),
)

SUBJECT = "nodelayd"


@dataclasses.dataclass
class GoalResult:
    goal: Goal
    status: str                   # "met", "MISSED" or "not measured"
    medians: dict[str, float]     # target -> median, the ones used
    unit: str = ""
    ratio: float | None = None    # what the limit bounds (None: absolute)
    why: str = ""                 # why not measured, or a caveat

    def threshold(self) -> str:
        op = "≥" if self.goal.at_least else "≤"
        if self.goal.ref is None:
            return f"{op} {self.goal.limit:g} {self.unit}".rstrip()
        return f"{op} {self.goal.limit:.2f}×"


def evaluate_goals(runs: Sequence[ScenarioResult],
                   goals: Sequence[Goal] = GOALS) -> list[GoalResult]:
    """Each goal against the run's medians (pure: no I/O).  A goal whose
    table is not in `runs`, or lacks a median it needs, is "not
    measured"."""
    by_name = {r.scenario.name: r for r in runs}
    out = []
    for g in goals:
        r = by_name.get(g.scenario)
        if r is None:
            out.append(GoalResult(g, "not measured", {},
                                  why=f"{g.scenario} not run"))
            continue
        needed = [SUBJECT] + ([g.ref] if g.ref else []) + (
            ["direct"] if g.added else [])
        med = {t: r.results[t].median for t in needed if t in r.results}
        med = {t: v for t, v in med.items() if v is not None}
        lack = [t for t in needed if t not in med]
        if lack:
            out.append(GoalResult(g, "not measured", med, r.scenario.unit,
                                  why="no value for " + ", ".join(lack)))
            continue
        lhs = med[SUBJECT]
        rhs = 1.0 if g.ref is None else med[g.ref]
        if g.added:
            lhs -= med["direct"]
            rhs -= med["direct"]
        bound = g.limit * rhs
        met = lhs >= bound if g.at_least else lhs <= bound
        ratio = None if g.ref is None or rhs <= 0 else lhs / rhs
        failed = [t for t in needed if r.results[t].error]
        out.append(GoalResult(
            g, "met" if met else "MISSED", med, r.scenario.unit, ratio,
            why=(", ".join(failed) + " failed a run: median of the runs "
                 "before") if failed else ""))
    return out


def _goal_measured(gr: GoalResult) -> str:
    if not gr.medians:
        return "—"
    txt = ", ".join(f"{t} {_fmt(v)}" for t, v in gr.medians.items())
    txt += f" {gr.unit}"
    if (gr.goal.added and SUBJECT in gr.medians and gr.goal.ref in gr.medians
            and "direct" in gr.medians):
        d = gr.medians["direct"]
        txt += (f"; added: {SUBJECT} {_fmt_signed(gr.medians[SUBJECT] - d)}, "
                f"{gr.goal.ref} {_fmt_signed(gr.medians[gr.goal.ref] - d)}")
    return txt


def _fmt_signed(v: float) -> str:
    return ("−" + _fmt(-v)) if v < 0 else _fmt(v)


def goals_markdown(results: Sequence[GoalResult]) -> list[str]:
    """The "Targets" section: one row per goal."""
    out = ["## Targets (issue 5)", "",
           f"{SUBJECT}'s medians against the reference's in the same run; "
           "ratio = " + SUBJECT + " / reference (for added latency: "
           "(" + SUBJECT + " − direct) / (reference − direct)).", "",
           "| target | measured (medians) | ratio | threshold | result |",
           "|---|---|---:|---:|---|"]
    for gr in results:
        status = gr.status if gr.status != "MISSED" else "**MISSED**"
        if gr.why:
            status += f" ({gr.why})"
        ratio = "—" if gr.ratio is None else _fmt(gr.ratio) + "×"
        out.append(f"| {gr.goal.text} | {_goal_measured(gr)} | "
                   f"{ratio} | {gr.threshold()} | {status} |")
    out.append("")
    return out


def goals_json(results: Sequence[GoalResult]) -> list[dict]:
    return [{"target": gr.goal.text, "scenario": gr.goal.scenario,
             "reference": gr.goal.ref, "added_latency": gr.goal.added,
             "medians": gr.medians, "unit": gr.unit, "ratio": gr.ratio,
             "threshold": gr.threshold(), "status": gr.status,
             "reason": gr.why or None}
            for gr in results]


def markdown(env: dict, runs: Sequence[ScenarioResult], reps: int,
             charts: Mapping[str, str] | None = None) -> str:
    """The report; `charts` maps a table's name to its PNG (a path relative
    to the report), linked under that table."""
    charts = charts or {}
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
    out += goals_markdown(evaluate_goals(runs))
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
        if sc.name in charts:
            out += [f"![{sc.name}: medians, min–max]({charts[sc.name]})", ""]
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
        "targets": goals_json(evaluate_goals(runs)),
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


# --- charts -------------------------------------------------------------------

def _colour(target: str) -> int:
    """nodelayd and its variants blue, direct grey, peers orange."""
    if target == "direct":
        return 0x888888
    return 0x2a7ab0 if target.startswith(SUBJECT) else 0xe0a040


def _gp_str(s: str) -> str:
    """A gnuplot double-quoted string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def chart_script(r: ScenarioResult, png: str,
                 terminal: str = "pngcairo") -> str | None:
    """gnuplot script drawing one table as horizontal bars (median, min–max
    error bars, value labelled) into `png`; None if no target has a value.
    Log scale when the values span more than 30×."""
    rows = [(t, tr.median, min(tr.values), max(tr.values))
            for t, tr in r.results.items() if tr.values]
    if not rows:
        return None
    sc = r.scenario
    lo = min(mn for _, _, mn, _ in rows)
    hi = max(mx for _, _, _, mx in rows)
    log_x = lo > 0 and hi / lo > 30
    base = lo / 2 if log_x else 0.0
    data = "\n".join(f"{_gp_str(t)} {med!r} {mn!r} {mx!r} {_colour(t)} "
                     f"{_gp_str(_fmt(med))}" for t, med, mn, mx in rows)
    xlabel = (f"median {sc.unit}, bars min–max ("
              f"{'higher' if sc.higher_is_better else 'lower'} is better"
              f"{', log scale' if log_x else ''})")
    return "\n".join([
        f"set terminal {terminal} size 900,{max(220, 90 + 38 * len(rows))} "
        "font ',10' noenhanced",
        f"set output {_gp_str(png)}",
        f"set title {_gp_str(f'{sc.name}: {sc.title}')}",
        f"set xlabel {_gp_str(xlabel)}",
        "set logscale x" if log_x else "unset logscale x",
        f"set xrange [{base!r}:{hi * (4 if log_x else 1.25)!r}]",
        f"set yrange [{len(rows) - 0.5}:-0.5]",
        "set style fill solid 0.8 border -1",
        "set grid xtics",
        "unset key",
        "$d << EOD", data, "EOD",
        f"plot $d using 2:0:({base!r}):2:($0-0.35):($0+0.35):5:ytic(1) "
        "with boxxyerror lc rgb variable, \\",
        "     $d using 2:0:3:4 with xerrorbars lc rgb 'black' pt 0, \\",
        "     $d using 4:0:6 with labels left offset 0.6,0",
        ""])


def charts(runs: Sequence[ScenarioResult], out_dir: str,
           log: Callable[[str], None]) -> dict[str, str]:
    """Write NAME.png into out_dir for every table of the run, with gnuplot;
    return {table name: file name}.  Without gnuplot, or when it fails, a
    warning and fewer (or no) charts: the bench goes on."""
    gp = shutil.which("gnuplot")
    if gp is None:
        log("warning: gnuplot not found, no charts (scripts/install-deps "
            "--bench installs gnuplot-nox)")
        return {}
    try:  # gnuplot-nox has pngcairo; a build without cairo only png
        terms = subprocess.run([gp, "-e", "print GPVAL_TERMINALS"],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=30,
                               check=False).stdout.decode().split()
    except (OSError, subprocess.TimeoutExpired) as e:
        log(f"warning: gnuplot does not run ({e}), no charts")
        return {}
    terminal = "pngcairo" if "pngcairo" in terms else "png"
    made = {}
    for r in runs:
        name = f"{r.scenario.name}.png"
        path = os.path.join(out_dir, name)
        script = chart_script(r, path, terminal)
        if script is None:
            continue
        try:
            p = subprocess.run([gp], input=script.encode(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            log(f"warning: chart {name}: {e}")
            continue
        if p.returncode != 0 or not os.path.exists(path):
            err = p.stderr.decode("utf-8", "replace").strip()
            log(f"warning: chart {name}: gnuplot exited {p.returncode}: "
                + (err.splitlines()[-1] if err else "no output"))
            continue
        made[r.scenario.name] = name
    return made
