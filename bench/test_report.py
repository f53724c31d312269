"""Unit tests of bench/report.py's pure parts: issue 5's targets, the
Targets section, the chart script.  No network, no processes.

Run from the repository root:  python3 -m unittest bench/test_report.py
"""

from __future__ import annotations

import json
import os
import sys
import types
import unittest

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [BENCH, os.path.join(os.path.dirname(BENCH), "tests", "e2e")]

import report  # noqa: E402
from runner import ScenarioResult, TargetResult  # noqa: E402


def result(name: str, medians: dict[str, float | None], unit: str = "u",
           higher_is_better: bool = True) -> ScenarioResult:
    """A ScenarioResult whose targets have one value each (None: no value,
    an error)."""
    sc = types.SimpleNamespace(name=name, title=name, unit=unit,
                               higher_is_better=higher_is_better,
                               describe=lambda: "")
    res = {t: TargetResult(t, [] if v is None else [v],
                           error=None if v is not None else "failed")
           for t, v in medians.items()}
    return ScenarioResult(sc, res, 1.0)


def goal(scenario: str) -> report.Goal:
    return next(g for g in report.GOALS if g.scenario == scenario)


def evaluate(g: report.Goal, *runs: ScenarioResult) -> report.GoalResult:
    [gr] = report.evaluate_goals(runs, [g])
    return gr


class EvaluateGoals(unittest.TestCase):
    def test_every_issue_5_target_is_listed(self):
        self.assertEqual(
            [g.scenario for g in report.GOALS],
            ["bulk-1", "http-keepalive", "http-close", "pingpong-p50",
             "pingpong-p99", "idle-memory-pss", "imap", "wwr", "wwr-both",
             "wwr-nodelay"])

    def test_higher_is_better_ratio_against_haproxy(self):
        g = goal("bulk-1")
        met = evaluate(g, result("bulk-1", {"direct": 13.0, "nodelayd": 9.0,
                                            "haproxy": 6.0}))
        self.assertEqual(met.status, "met")
        self.assertAlmostEqual(met.ratio, 1.5)
        self.assertEqual(met.medians, {"nodelayd": 9.0, "haproxy": 6.0})
        missed = evaluate(g, result("bulk-1", {"nodelayd": 8.9,
                                               "haproxy": 6.0}))
        self.assertEqual(missed.status, "MISSED")
        self.assertEqual(missed.threshold(), "≥ 1.50×")

    def test_lower_is_better_ratio_against_direct(self):
        g = goal("wwr-nodelay")
        r = evaluate(g, result("wwr-nodelay", {"direct": 40.0,
                                               "nodelayd": 60.0},
                               higher_is_better=False))
        self.assertEqual((r.status, r.ratio), ("met", 1.5))
        r = evaluate(g, result("wwr-nodelay", {"direct": 40.0,
                                               "nodelayd": 61.0},
                               higher_is_better=False))
        self.assertEqual(r.status, "MISSED")
        self.assertEqual(r.threshold(), "≤ 1.50×")

    def test_added_latency(self):
        g = goal("pingpong-p99")
        # nodelayd adds 30, haproxy 50: 0.6 <= 0.7
        r = evaluate(g, result("pingpong-p99", {"direct": 20.0,
                                                "nodelayd": 50.0,
                                                "haproxy": 70.0}))
        self.assertEqual(r.status, "met")
        self.assertAlmostEqual(r.ratio, 0.6)
        # nodelayd adds 40, haproxy 50: 0.8 > 0.7
        r = evaluate(g, result("pingpong-p99", {"direct": 20.0,
                                                "nodelayd": 60.0,
                                                "haproxy": 70.0}))
        self.assertEqual(r.status, "MISSED")
        self.assertIn("added: nodelayd 40.0, haproxy 50.0",
                      report._goal_measured(r))

    def test_added_latency_when_haproxy_adds_nothing(self):
        # No ratio to show; still decided: nodelayd must add <= 0.7 * 0.
        r = evaluate(goal("pingpong-p50"),
                     result("pingpong-p50", {"direct": 20.0,
                                             "nodelayd": 25.0,
                                             "haproxy": 20.0}))
        self.assertEqual((r.status, r.ratio), ("MISSED", None))

    def test_absolute_bound(self):
        g = goal("idle-memory-pss")
        r = evaluate(g, result("idle-memory-pss", {"direct": None,
                                                   "nodelayd": 0.9},
                               unit="KiB/conn", higher_is_better=False))
        self.assertEqual((r.status, r.ratio), ("met", None))
        self.assertEqual(r.threshold(), "≤ 1 KiB/conn")
        r = evaluate(g, result("idle-memory-pss", {"nodelayd": 1.01},
                               unit="KiB/conn", higher_is_better=False))
        self.assertEqual(r.status, "MISSED")

    def test_not_measured(self):
        g = goal("http-close")
        r = evaluate(g, result("imap", {"direct": 1.0, "nodelayd": 1.0}))
        self.assertEqual((r.status, r.why),
                         ("not measured", "http-close not run"))
        r = evaluate(g, result("http-close", {"nodelayd": 1.0,
                                              "haproxy": None}))
        self.assertEqual((r.status, r.why),
                         ("not measured", "no value for haproxy"))
        r = evaluate(g, result("http-close", {"haproxy": 1.0}))
        self.assertEqual((r.status, r.why),
                         ("not measured", "no value for nodelayd"))

    def test_a_failed_run_is_flagged(self):
        r = result("bulk-1", {"nodelayd": 9.0, "haproxy": 5.0})
        r.results["nodelayd"].error = "rep 2: iperf3 failed"
        gr = evaluate(goal("bulk-1"), r)
        self.assertEqual(gr.status, "met")
        self.assertIn("nodelayd failed a run", gr.why)

    def test_one_result_per_goal_in_order(self):
        runs = [result("imap", {"direct": 100.0, "nodelayd": 95.0})]
        out = report.evaluate_goals(runs)
        self.assertEqual([gr.goal for gr in out], list(report.GOALS))
        self.assertEqual(out[6].status, "met")
        self.assertTrue(all(gr.status == "not measured"
                            for i, gr in enumerate(out) if i != 6))


class Rendering(unittest.TestCase):
    RUNS = [result("bulk-1", {"direct": 13.0, "nodelayd": 6.0,
                              "haproxy": 5.0}, unit="Gbit/s"),
            result("wwr", {"direct": 88000.0, "nodelayd": 180.0},
                   unit="µs/round", higher_is_better=False)]

    def test_markdown_section(self):
        lines = report.goals_markdown(report.evaluate_goals(self.RUNS))
        self.assertEqual(lines[0], "## Targets (issue 5)")
        rows = [l for l in lines if l.startswith("| ") and "---" not in l]
        self.assertEqual(len(rows), len(report.GOALS) + 1)  # + header
        self.assertIn("| nodelayd 6.00, haproxy 5.00 Gbit/s | 1.20× | "
                      "≥ 1.50× | **MISSED** |", rows[1])
        self.assertIn("| 0.002× | ≤ 1.50× | met |", rows[8])
        self.assertIn("not measured (http-keepalive not run)", rows[2])

    def test_report_has_targets_after_environment(self):
        env = {k: "x" for k in ("command", "date", "kernel", "cpus",
                                "python", "nodelayd", "haproxy", "nginx",
                                "socat", "dovecot", "curl")}
        md = report.markdown(env, self.RUNS, 1, {"wwr": "wwr.png"})
        self.assertLess(md.index("- speed-up columns"),
                        md.index("## Targets (issue 5)"))
        self.assertLess(md.index("## Targets (issue 5)"),
                        md.index("## bulk-1"))
        self.assertIn("](wwr.png)", md)
        self.assertNotIn("](bulk-1.png)", md)
        doc = json.loads(report.as_json(env, self.RUNS, 1))
        self.assertEqual(len(doc["targets"]), len(report.GOALS))
        self.assertEqual(doc["targets"][0]["status"], "MISSED")
        self.assertEqual(doc["targets"][0]["medians"],
                         {"nodelayd": 6.0, "haproxy": 5.0})

    def test_chart_script(self):
        s = report.chart_script(self.RUNS[1], "/tmp/x.png")
        self.assertIn('set output "/tmp/x.png"', s)
        self.assertIn("set logscale x", s)  # 180 vs 88,000
        self.assertIn('"nodelayd" 180.0 180.0 180.0', s)
        s = report.chart_script(self.RUNS[0], "/tmp/y.png")
        self.assertIn("unset logscale x", s)
        self.assertIsNone(report.chart_script(
            result("cpu", {"direct": None}), "/tmp/z.png"))


if __name__ == "__main__":
    unittest.main()
