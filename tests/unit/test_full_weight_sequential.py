"""Sequential checks of a canary at 100 percent: GA takes no traffic then, so the canary's counts since the step
to 100% are compared with GA's over the period before it (from when the weights last moved), both times from
git; without GA counts from then the checks are inconclusive and say why, never dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gitbot.analysis import (
    AnalysisSpec,
    CheckSpec,
    GaReference,
    build_queries,
    judge_full_weight,
    render_evidence,
    run_full_weight_analysis,
)
from gitbot.config import CanarySettings
from gitbot.domain import Analysis, CheckResult
from gitbot.history import read_history
from gitbot.ports import Workload
from gitbot.rollout import canary_history
from tests.unit.test_history_landing import ALICE, POLICY, Branch, canary
from tests.unit.test_history_landing import at as minute
from tests.unit.test_sequential_checks import FAST, SLOW, CountingMetrics, histogram

__all__ = ["canary"]

BEFORE = datetime(2026, 1, 5, 12, 14, tzinfo=UTC)  # the step to 60% landed
FULL = BEFORE + timedelta(minutes=13)  # the step to 100% landed
AT = FULL + timedelta(minutes=10)
ERRORS = CheckSpec("error-rate", alpha=0.05)
LATENCY = CheckSpec("latency", alpha=0.05)


def spec(*checks: CheckSpec) -> AnalysisSpec:
    return AnalysisSpec("test", "podinfo-ga", "podinfo-canary", timedelta(minutes=5), 100, checks or (ERRORS, LATENCY))


class PeriodMetrics(CountingMetrics):
    """Requests and 5xx per workload, with a fast histogram (or a slow one for the canary)."""

    def __init__(self, canary: tuple[float, float], ga: tuple[float, float], *, slow: bool = False) -> None:
        super().__init__(
            {"podinfo-canary": canary, "podinfo-ga": ga},
            {
                "podinfo-canary": histogram(canary[0], SLOW if slow else FAST),
                "podinfo-ga": histogram(ga[0], FAST),
            },
        )


def analyse(metrics: CountingMetrics, *checks: CheckSpec, before: datetime | None = BEFORE) -> Analysis:
    reference = GaReference(FULL, {"requests:stable": 4000.0})
    return run_full_weight_analysis(spec(*checks), metrics, AT, reference, since=FULL, before_full_at=before)


def row(analysis: Analysis, name: str) -> CheckResult:
    return next(c for c in analysis.checks if c.name == name)


def test_equal_rates_pass_and_ga_is_counted_before_the_step_to_100_percent() -> None:
    metrics = PeriodMetrics((12000, 60), (5000, 25))
    analysis = analyse(metrics)
    assert [(c.name, c.verdict) for c in analysis.checks] == [("error-rate", "pass"), ("latency", "pass")]
    assert analysis.verdict == "pass"
    # The canary from the step to 100% until now; GA from the previous step until the step to 100%.
    assert sorted({(name, start, end) for _, name, start, end in metrics.asked}) == [
        ("podinfo-canary", FULL, AT),
        ("podinfo-ga", BEFORE, FULL),
    ]
    errors = row(analysis, "error-rate")
    assert errors.requests == (12000, 5000) and errors.since == FULL and errors.stable_period == (BEFORE, FULL)
    assert errors.detail.startswith("no evidence of a regression against GA before 100%: e = ")


def test_twice_the_error_rate_at_100_percent_fails_against_ga_before_it() -> None:
    analysis = analyse(PeriodMetrics((12000, 120), (5000, 25)))
    errors = row(analysis, "error-rate")
    assert analysis.verdict == "fail" and errors.verdict == "fail"
    assert errors.effect == pytest.approx(2.0)
    assert errors.detail.startswith("1% vs GA 0.5% before 100%; e = ")
    assert analysis.summary.startswith("error-rate 1% vs GA 0.5% before 100%; e = ")
    assert row(analysis, "latency").verdict == "pass"


def test_a_slower_canary_at_100_percent_fails_the_latency_test() -> None:
    analysis = analyse(PeriodMetrics((12000, 60), (5000, 25), slow=True))
    latency = row(analysis, "latency")
    assert latency.verdict == "fail"
    assert latency.detail.startswith("p99 ") and " before 100%; e = " in latency.detail


def test_the_evidence_shows_gas_side_is_before_100_percent_and_its_period() -> None:
    text = render_evidence(analyse(PeriodMetrics((12000, 120), (5000, 25)), ERRORS))
    line = next(line for line in text.splitlines() if line.startswith("| error-rate |"))
    cells = [cell.strip() for cell in line.strip("|").split(" | ")]
    assert cells[1:4] == ["1%", "0.5% before 100%", "2.00x"]
    assert cells[8] == "12000 / 5000"
    assert cells[9] == "2026-01-05 12:27:00Z; GA 2026-01-05 12:14:00Z to 2026-01-05 12:27:00Z, before 100%"
    # Sequential checks alone: no windowed table and no window request gate.
    assert text.startswith("| Sequential check |")


def test_without_a_previous_step_in_history_the_checks_are_inconclusive_and_say_so() -> None:
    metrics = PeriodMetrics((12000, 120), (5000, 25))
    analysis = analyse(metrics, before=None)
    assert [(c.name, c.verdict) for c in analysis.checks] == [
        ("error-rate", "inconclusive"),
        ("latency", "inconclusive"),
    ]
    assert row(analysis, "error-rate").detail == (
        "no GA counts from before the step to 100% (GA takes no traffic at 100%): "
        "history has no step before the step to 100% to count GA's requests from"
    )
    assert metrics.asked == []


def test_without_a_step_to_100_percent_in_history_the_checks_are_inconclusive() -> None:
    metrics = PeriodMetrics((12000, 120), (5000, 25))
    analysis = run_full_weight_analysis(spec(), metrics, AT, GaReference(None, {}), before_full_at=BEFORE)
    assert analysis.verdict == "inconclusive"
    assert all(c.detail.endswith("history has no step to 100%") for c in analysis.checks)


def test_too_few_ga_requests_before_100_percent_is_inconclusive_with_the_period() -> None:
    analysis = analyse(PeriodMetrics((12000, 60), (40, 0)), ERRORS)
    errors = row(analysis, "error-rate")
    assert errors.verdict == "inconclusive"
    assert errors.detail.startswith(
        "GA had 40 requests before the step to 100% (2026-01-05 12:14:00Z to 2026-01-05 12:27:00Z), needs 100"
    )
    none = row(analyse(PeriodMetrics((12000, 60), (0, 0)), ERRORS), "error-rate")
    assert none.verdict == "inconclusive"
    assert none.detail.startswith("no GA requests recorded before the step to 100% (2026-01-05 12:14:00Z")


def test_a_failed_query_for_gas_counts_is_inconclusive_and_names_gas_side() -> None:
    class GaDown(PeriodMetrics):
        def request_counts(self, workload: Workload, start: datetime, end: datetime) -> tuple[float, float] | None:
            if workload.name == "podinfo-ga":
                self.unreachable = True
            return super().request_counts(workload, start, end)

    analysis = analyse(GaDown((12000, 60), (5000, 25)), ERRORS)
    assert row(analysis, "error-rate").detail == (
        "no GA counts from before the step to 100% (GA takes no traffic at 100%): "
        "query failed: cannot connect to Prometheus at http://127.0.0.1:9"
    )


def test_judged_without_counts_the_checks_are_inconclusive_never_dropped() -> None:
    the_spec = spec(CheckSpec("success-rate", min=99), ERRORS)
    samples = {"requests:canary": 3000.0, "0:success-rate:canary": 99.9}
    analysis = judge_full_weight(the_spec, samples, AT, GaReference(FULL, {}))
    assert [(c.name, c.verdict) for c in analysis.checks] == [
        ("requests", "pass"),
        ("success-rate", "pass"),
        ("error-rate", "inconclusive"),
    ]
    assert analysis.verdict == "inconclusive"
    assert row(analysis, "error-rate").detail == "the counts since the step to 100% were not measured"


def test_a_guardrail_and_a_sequential_check_combine_at_100_percent() -> None:
    the_spec = spec(CheckSpec("success-rate", min=99), ERRORS)
    queries = build_queries(the_spec)
    answers = {queries["requests:canary"]: 3000.0, queries["0:success-rate:canary"]: 99.0}
    metrics = PeriodMetrics((12000, 120), (5000, 25))
    metrics.instants = answers
    analysis = run_full_weight_analysis(the_spec, metrics, AT, GaReference(FULL, {}), before_full_at=BEFORE)
    assert [(c.name, c.verdict) for c in analysis.checks] == [
        ("requests", "pass"),
        ("success-rate", "pass"),
        ("error-rate", "fail"),
    ]
    # The guardrail compares with nobody, so the window's GA reference is not needed for it.
    assert row(analysis, "requests").threshold == ">= 100 canary"


def test_history_gives_the_step_before_the_step_to_100_percent(canary: CanarySettings) -> None:
    g = Branch()
    seed = g.add("seed", 0, author=ALICE)
    step10 = g.step(2, seed, 0, 10)
    step60 = g.step(14, step10, 10, 60)
    step100 = g.step(27, step60, 60, 100)
    hist = canary_history(read_history(g.by_date(), POLICY), canary)
    assert (hist.full_at, hist.before_full_at) == (minute(27), minute(14))

    # A person reverted the step to 100% (back to 60%); after a resume the bot stepped to 100% again: GA's
    # period runs from the revert, when the weights last moved.
    revert = g.add(
        f'Revert "{step100.subject}"', 30, (step100,), body=f"This reverts commit {step100.sha}.", author=ALICE
    )
    resumed = g.marker(31, revert, "resume")
    g.step(40, resumed, 60, 100)
    hist = canary_history(read_history(g.by_date(), POLICY), canary)
    assert (hist.full_at, hist.before_full_at) == (minute(40), minute(30))


def test_a_step_straight_to_100_percent_has_no_period_before_it(canary: CanarySettings) -> None:
    g = Branch()
    seed = g.add("seed", 0, author=ALICE)
    g.step(2, seed, 0, 100)
    hist = canary_history(read_history(g.by_date(), POLICY), canary)
    assert (hist.full_at, hist.before_full_at) == (minute(2), None)
