"""Runs one scenario against every target, interleaved and repeated.

Why: targets are measured on the same backend, at the same time, in an order
that rotates each repetition, so drift (page cache, CPU frequency, a noisy
neighbour) hits all targets alike.  A target that errors is recorded and
dropped for the remaining repetitions; the others go on.  Every server and
proxy is stopped when the scenario ends, however it ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from typing import Callable, Sequence

from kit import proxies
from kit.deadline import deadline

from scenarios.base import Scenario


@dataclasses.dataclass
class TargetResult:
    target: str
    values: list[float] = dataclasses.field(default_factory=list)
    error: str | None = None
    exit_status: int | None = None  # proxy's status after SIGTERM

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None


@dataclasses.dataclass
class ScenarioResult:
    scenario: Scenario
    results: dict[str, TargetResult]
    seconds: float


def run_scenario(sc: Scenario, targets: Sequence[str], reps: int,
                 nodelayd_args: Sequence[str],
                 log: Callable[[str], None]) -> ScenarioResult:
    t_start = time.monotonic()
    results = {t: TargetResult(t) for t in targets}
    eps = {}
    with contextlib.ExitStack() as stack:
        host, port = stack.enter_context(sc.server())
        for t in targets:
            try:
                eps[t] = stack.enter_context(
                    proxies.launcher(t, nodelayd_args).start(0, host, port))
            except Exception as e:  # noqa: BLE001 - reported, others go on
                results[t].error = f"start failed: {e}"
                log(f"  {t}: start failed: {e}")
        live = [t for t in targets if t in eps]
        for t in live:
            _attempt(sc, t, eps[t], results[t], "warm-up", sc.warmup, log)
        for rep in range(reps):
            k = rep % len(live) if live else 0
            for t in live[k:] + live[:k]:
                v = _attempt(sc, t, eps[t], results[t], f"rep {rep + 1}",
                             sc.run_once, log)
                if v is not None:
                    results[t].values.append(v)
                    log(f"  rep {rep + 1}/{reps} {t:<13} {v:12.1f} {sc.unit}")
        stack.close()
        for t, ep in eps.items():
            if ep.proc is not None:
                results[t].exit_status = ep.proc.returncode
    return ScenarioResult(sc, results, time.monotonic() - t_start)


def _attempt(sc: Scenario, t: str, ep, res: TargetResult, what: str,
             fn, log: Callable[[str], None]):
    """fn(ep) under the scenario's deadline; on error, record it on `res`
    (which drops the target from the remaining runs) and return None."""
    if res.error:
        return None
    try:
        with deadline(sc.run_timeout, f"{sc.name}/{t}"):
            return fn(ep)
    except Exception as e:  # noqa: BLE001 - reported, others go on
        res.error = f"{what}: {type(e).__name__}: {e}"
        if ep.proc is not None and ep.proc.poll() is not None:
            res.error += f" (process exited {ep.proc.poll()})"
        log(f"  {t}: {res.error}")
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
