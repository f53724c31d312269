"""Runs one scenario against every target, interleaved and repeated.

Why: targets are measured on the same backend, at the same time, in an order
that rotates each repetition, so drift (page cache, CPU frequency, a noisy
neighbour) hits all targets alike.  A target that errors is recorded and
dropped for the remaining repetitions; the others go on.  Every server and
proxy is stopped when the scenario ends, however it ends.  A scenario that
measures several numbers per run (Scenario.metrics) yields one result per
metric, each reported as its own table ("bulk-1", "bulk-4").
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import statistics
import time
from typing import Callable, Sequence

from kit import procstat, proxies
from kit.deadline import deadline

from scenarios.base import Metric, Scenario


def add_variant(spec: str) -> str:
    """Registers the target of a `--variant NAME='BINARY [ARGS...]'` value (BINARY `-`: the
    default nodelayd) and returns its name, nodelayd-NAME; ValueError if malformed."""
    name, sep, rest = spec.partition("=")
    words = shlex.split(rest)
    if not sep or not name or not words:
        raise ValueError(f"--variant {spec!r}: want NAME='BINARY [ARGS...]'")
    if not name.startswith("nodelayd-"):
        name = "nodelayd-" + name  # tables colour and check it as nodelayd
    binary = "" if words[0] == "-" else os.path.abspath(words[0])
    proxies.add_variant(name, binary, words[1:])
    return name


@dataclasses.dataclass
class TargetResult:
    target: str
    values: list[float] = dataclasses.field(default_factory=list)
    error: str | None = None
    exit_status: int | None = None  # proxy's status after SIGTERM
    note: str | None = None  # not applicable, smaller workload, ...

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None


class MetricView:
    """One metric of a multi-metric scenario, shaped like a Scenario for
    the report: name "<scenario>-<key>", its own unit and direction."""

    def __init__(self, sc: Scenario, m: Metric):
        self.base = sc
        self.name = f"{sc.name}-{m.key}"
        self.title = f"{sc.title}: {m.title}"
        self.unit = m.unit
        self.higher_is_better = m.higher_is_better

    def describe(self) -> str:
        return self.base.describe()


@dataclasses.dataclass
class ScenarioResult:
    scenario: Scenario | MetricView
    results: dict[str, TargetResult]
    seconds: float
    loadavg: str = "?"  # 1/5/15 min load averages when it started


def targets_for(sc: Scenario, targets: Sequence[str]) -> list[str]:
    """`targets` plus the scenario's extra variants of those among them
    (nodelayd-nosplice when nodelayd runs, haproxy-busypoll when haproxy
    does)."""
    out = list(targets)
    out += [t for t in sc.extra_targets
            if t not in out and t.split("-", 1)[0] in targets]
    return out


def _fmt_value(sc: Scenario, v) -> str:
    if isinstance(v, dict):
        return "  ".join(f"{m.key} {v[m.key]:.4g} {m.unit}"
                         for m in sc.metrics)
    return f"{v:12.1f} {sc.unit}"


def run_scenario(sc: Scenario, targets: Sequence[str], reps: int,
                 nodelayd_args: Sequence[str],
                 log: Callable[[str], None]) -> list[ScenarioResult]:
    """Run `sc` against every target; one ScenarioResult per metric (just
    one for a single-value scenario)."""
    t_start = time.monotonic()
    load = procstat.loadavg()
    targets = targets_for(sc, targets)
    keys = [m.key for m in sc.metrics] or [None]
    results = {k: {t: TargetResult(t) for t in targets} for k in keys}

    def error(t: str, msg: str) -> None:
        for k in keys:
            results[k][t].error = msg

    eps = {}
    raw: dict[str, list] = {t: [] for t in targets}
    with contextlib.ExitStack() as stack:
        try:
            host, port = stack.enter_context(sc.server())
        except Exception as e:  # noqa: BLE001 - reported, scenarios go on
            log(f"  server failed to start: {type(e).__name__}: {e}")
            for t in targets:
                error(t, f"server failed to start: {type(e).__name__}: {e}")
            host = port = None
        for t in (targets if host is not None else ()):
            if t in sc.not_applicable:
                log(f"  {t}: not measured ({sc.not_applicable[t]})")
                continue
            try:
                eps[t] = stack.enter_context(
                    proxies.launcher(t, nodelayd_args, sc.capacity)
                    .start(0, host, port))
                _pause(eps[t])
            except Exception as e:  # noqa: BLE001 - reported, others go on
                error(t, f"start failed: {e}")
                log(f"  {t}: start failed: {e}")
        live = [t for t in targets if t in eps]
        failed: dict[str, str] = {}
        retried: dict[str, list[str]] = {t: [] for t in targets}
        for t in live:
            _attempt(sc, t, eps[t], failed, retried, "warm-up", sc.warmup, log)
        for rep in range(reps):
            k = rep % len(live) if live else 0
            for t in live[k:] + live[:k]:
                v = _attempt(sc, t, eps[t], failed, retried, f"rep {rep + 1}",
                             sc.run_once, log)
                if v is not None:
                    raw[t].append(v)
                    log(f"  rep {rep + 1}/{reps} {t:<13} "
                        f"{_fmt_value(sc, v)}")
        stack.close()
        for t, msg in failed.items():
            error(t, msg)
        for t in targets:
            note = sc.not_applicable.get(t) or sc.note(t)
            if retried[t]:
                again = "; ".join(retried[t])
                note = (f"{note}; " if note else "") + f"retried after: {again}"
            for key in keys:
                tr = results[key][t]
                tr.note = note
                tr.values = [v if key is None else v[key] for v in raw[t]]
                if t in eps and eps[t].proc is not None:
                    tr.exit_status = eps[t].proc.returncode
    secs = time.monotonic() - t_start
    if not sc.metrics:
        return [ScenarioResult(sc, results[None], secs, load)]
    return [ScenarioResult(MetricView(sc, m), results[m.key], secs, load)
            for m in sc.metrics]


def _pause(ep) -> None:
    if ep.proc is not None:
        ep.proc.pause()


@contextlib.contextmanager
def _running(ep):
    """Only the target being measured runs; the others wait paused (SIGSTOP).
    Why: a peer that polls while idle (haproxy-busypoll spins a whole CPU) or
    any daemon's timers would otherwise take CPU from the measured one, on a
    machine where client, backend and proxy already share 2 CPUs."""
    if ep.proc is not None:
        ep.proc.resume()
    try:
        yield
    finally:
        _pause(ep)


def _attempt(sc: Scenario, t: str, ep, failed: dict[str, str],
             retried: dict[str, list[str]], what: str, fn,
             log: Callable[[str], None]):
    """fn(ep) under the scenario's deadline. A run that fails is tried once
    more (the failure goes into `retried`, and from there into the target's
    row): a one-off hiccup of a shared backend or client tool on a loaded CI
    machine must not read as the target's fault, while a target that fails
    twice in a row, or whose process died, is recorded in `failed` (which
    drops it from the remaining runs) and None is returned."""
    if t in failed:
        return None
    for attempt in (1, 2):
        try:
            with deadline(sc.run_timeout, f"{sc.name}/{t}"), _running(ep):
                return fn(ep)
        except Exception as e:  # noqa: BLE001 - reported, others go on
            msg = f"{what}: {type(e).__name__}: {e}"
            died = ep.proc is not None and ep.proc.poll() is not None
            if died:
                msg += f" (process exited {ep.proc.poll()})"
            log(f"  {t}: {msg}")
            if attempt == 2 or died:
                failed[t] = msg
                return None
            retried[t].append(msg)
    return None


def best_peer(res: ScenarioResult, peers: Sequence[str]) -> str | None:
    """The peer proxy with the best median, if any peer has one."""
    have = [p for p in peers if p in res.results and res.results[p].median
            is not None]
    if not have:
        return None
    pick = max if res.scenario.higher_is_better else min
    return pick(have, key=lambda p: res.results[p].median)


def speedup(res: ScenarioResult, target: str, ref: str | None) -> float | None:
    """How many times faster `target` is than `ref` (>1 = faster)."""
    if ref is None or ref not in res.results:
        return None
    a, b = res.results[target].median, res.results[ref].median
    if a is None or b is None or a == 0 or b == 0:
        return None
    return a / b if res.scenario.higher_is_better else b / a
