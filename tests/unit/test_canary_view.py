"""How `gitbot status` and `gitbot analyze` show a canary: the rendered lines, as a person reads them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gitbot.canary import CanaryDecision
from gitbot.commands.canary_view import render_canary, status_of, step_text
from gitbot.domain import Analysis, CheckResult
from gitbot.manual import CanaryReport
from gitbot.rollout import Observation

END = datetime(2026, 1, 5, 12, 20, tzinfo=UTC)
IMAGE = "ghcr.io/stefanprodan/podinfo"
CHECKS = (
    CheckResult("requests", "pass", 600.0, 5400.0, ">= 100 each"),
    CheckResult("success-rate", "inconclusive", None, 99.9, ">= 99%, >= GA - 0.5pp", "no canary data"),
    CheckResult("latency-p99", "fail", 375.0, 175.0, "<= 1.5x GA", "2.14x GA"),
)


def report(**overrides: object) -> CanaryReport:
    analysis = Analysis("fail", CHECKS, END - timedelta(minutes=5), END, "p99 2.14x GA")
    base = CanaryReport(
        name="podinfo",
        route="VirtualService/test/podinfo",
        weight=60,
        step="step 2 of 3",
        dwell_left=None,
        paused="",
        observation=Observation(analysis, 58.26, None),
        steps=(10, 60, 100),
        decision=CanaryDecision("rollback", 60, 0, "analysis failed at 60%: roll back to 0%"),
        stable_images=(f"{IMAGE}:0.1.1",),
        canary_images=(f"{IMAGE}:0.2.1",),
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def test_a_failing_canary_reads_like_argo_rollouts_get_rollout() -> None:
    assert render_canary(report(), "production") == [
        "Name:          podinfo",
        "Policy:        production",
        "Route:         VirtualService/test/podinfo",
        "Status:        ✖ Degraded",
        "Message:       analysis failed at 60%: roll back to 0%",
        "Step:          2/3 (10, 60, 100)",
        "SetWeight:     60",
        "ActualWeight:  58.3 (observed share of requests)",
        f"Images:        {IMAGE}:0.1.1 (stable)",
        f"               {IMAGE}:0.2.1 (canary)",
        "Analysis:      ✖ fail (p99 2.14x GA), 5m to 2026-01-05 12:20:00Z",
        "  ✔ pass          requests      canary 600       GA 5400      >= 100 each",
        "  ? inconclusive  success-rate  canary -         GA 99.90%    >= 99%, >= GA - 0.5pp  no canary data",
        "  ✖ fail          latency-p99   canary 375.0 ms  GA 175.0 ms  <= 1.5x GA             2.14x GA",
    ]


def test_a_held_canary_says_why_and_how_long_it_dwells() -> None:
    held = report(
        decision=CanaryDecision("hold", 60, None, "analysis inconclusive: canary has 12 requests, needs 100"),
        dwell_left=timedelta(minutes=4, seconds=30),
        observation=Observation(None, None, None),
    )
    lines = render_canary(held, "production")
    assert "Status:        ◌ Progressing" in lines
    assert "Message:       analysis inconclusive: canary has 12 requests, needs 100" in lines
    assert "Dwell left:    4m30s" in lines
    assert "ActualWeight:  unknown (no traffic to observe)" in lines


def test_status_marks() -> None:
    assert status_of(report(paused="paused by alice")) == "॥ Paused"
    done = CanaryDecision("complete", 100, None, "canary complete at 100%")
    passed = Analysis("pass", CHECKS[:1], END - timedelta(minutes=5), END)
    assert status_of(report(weight=100, decision=done, observation=Observation(passed, 100.0, None))) == "✔ Healthy"
    waiting = CanaryDecision("hold", 0, None, "rolled back; waiting for a newer canary tag")
    assert status_of(report(weight=0, decision=waiting, observation=Observation(None, None, None))) == (
        "॥ Holding at 0%"
    )


def test_step_k_of_n() -> None:
    assert step_text(report(weight=0)) == "0/3 (10, 60, 100)"
    assert step_text(report(weight=100)) == "3/3 (10, 60, 100)"
    assert step_text(report(weight=30)) == "between steps (10, 60, 100), set by hand"
