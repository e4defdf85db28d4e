"""Sequential checks in a policy and an analysis: schema, counts asked of the port, tri-state verdicts, evidence."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitbot.analysis import (
    AnalysisSpec,
    CheckSpec,
    SequentialCounts,
    SideCounts,
    build_queries,
    judge_sequential,
    render_evidence,
    run_analysis,
)
from gitbot.config import load_policy
from gitbot.errors import ConfigError, MetricsError
from gitbot.ports import Measure, Workload
from tests.support.specs import absolute, canary_only
from tests.unit.test_config import CANARY, load_refusal, write

SINCE = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
AT = SINCE + timedelta(minutes=20)
ERRORS = CheckSpec("error-rate", alpha=0.05, margin=0.5)
LATENCY = CheckSpec("latency", alpha=0.05)
BOUNDS = (25.0, 100.0, 250.0, 1000.0, math.inf)


def spec(*checks: CheckSpec, min_requests: int = 100) -> AnalysisSpec:
    return AnalysisSpec("test", "podinfo-ga", "podinfo-canary", timedelta(minutes=5), min_requests, checks)


def histogram(total: float, under: tuple[float, ...]) -> tuple[tuple[float, float], ...]:
    return tuple((bound, total * fraction) for bound, fraction in zip(BOUNDS, under, strict=True))


FAST = (0.9, 0.98, 1.0, 1.0, 1.0)
SLOW = (0.5, 0.8, 0.95, 1.0, 1.0)


@dataclass
class CountingMetrics:
    """The Metrics port answering request counts and latency buckets per workload name; records the calls."""

    counts: Mapping[str, tuple[float, float] | None]
    buckets: Mapping[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)
    instants: Mapping[Measure, float | None] = field(default_factory=dict)
    unreachable: bool = False
    asked: list[tuple[str, str, datetime, datetime]] = field(default_factory=list)

    def measure(self, measure: Measure, start: datetime, end: datetime) -> float | None:
        return self.instants.get(measure)

    def measure_series(
        self, measure: Measure, start: datetime, end: datetime, step: timedelta, window: timedelta
    ) -> list[tuple[float, float]]:
        raise AssertionError("not used here")

    def request_counts(self, workload: Workload, start: datetime, end: datetime) -> tuple[float, float] | None:
        self.asked.append(("requests", workload.name, start, end))
        if self.unreachable:
            raise MetricsError("cannot connect to Prometheus at http://127.0.0.1:9")
        assert (workload.namespace, workload.reporter) == ("test", "destination")
        return self.counts.get(workload.name)

    def latency_buckets(self, workload: Workload, start: datetime, end: datetime) -> list[tuple[float, float]]:
        self.asked.append(("buckets", workload.name, start, end))
        return list(self.buckets.get(workload.name, ()))


def test_sequential_checks_ask_no_window_queries_and_need_ga() -> None:
    assert build_queries(spec(ERRORS, LATENCY)) == build_queries(spec())
    assert ERRORS.compares and absolute(ERRORS) is None
    assert canary_only(spec(ERRORS)).checks == ()


def test_counts_are_asked_from_the_step_to_now_for_both_workloads() -> None:
    metrics = CountingMetrics(
        {"podinfo-canary": (1000, 5), "podinfo-ga": (9000, 45)},
        {"podinfo-canary": histogram(1000, FAST), "podinfo-ga": histogram(9000, FAST)},
    )
    analysis = run_analysis(spec(ERRORS, LATENCY), metrics, AT, since=SINCE)
    assert {(kind, name) for kind, name, _, _ in metrics.asked} == {
        ("requests", "podinfo-canary"),
        ("requests", "podinfo-ga"),
        ("buckets", "podinfo-canary"),
        ("buckets", "podinfo-ga"),
    }
    assert {(start, end) for _, _, start, end in metrics.asked} == {(SINCE, AT)}
    assert analysis.verdict == "pass", analysis
    assert [c.name for c in analysis.checks] == ["error-rate", "latency"]
    first = analysis.checks[0]
    assert first.requests == (1000, 9000) and first.since == SINCE and first.sequential
    assert first.canary == pytest.approx(0.5) and first.stable == pytest.approx(0.5)


def test_a_canary_failing_twice_as_often_fails_with_its_evidence() -> None:
    counts: SequentialCounts = {"canary": SideCounts(4000, 80, ()), "stable": SideCounts(36000, 360, ())}
    (result,) = judge_sequential(spec(CheckSpec("error-rate")), counts, since=SINCE)
    assert result.verdict == "fail"
    assert result.effect == pytest.approx(2.0)
    assert result.e_value is not None and result.e_value >= 20
    assert "2% vs GA 1%" in result.detail and ">= 20" in result.detail


def test_a_slower_canary_fails_the_latency_test() -> None:
    counts: SequentialCounts = {
        "canary": SideCounts(1000, 0, histogram(1000, SLOW)),
        "stable": SideCounts(9000, 0, histogram(9000, FAST)),
    }
    (result,) = judge_sequential(spec(LATENCY), counts, since=SINCE)
    assert result.verdict == "fail"
    assert result.canary is not None and result.stable is not None and result.canary > result.stable
    assert result.effect is not None and result.effect > 1


def test_within_the_margin_is_no_regression() -> None:
    counts: SequentialCounts = {"canary": SideCounts(4000, 48, ()), "stable": SideCounts(36000, 360, ())}
    (result,) = judge_sequential(spec(ERRORS), counts, since=SINCE)
    assert result.verdict == "pass"
    assert result.effect == pytest.approx(1.2)


@pytest.mark.parametrize(
    ("counts", "needle"),
    [
        ({"canary": SideCounts(50, 0, ()), "stable": SideCounts(9000, 45, ())}, "canary has 50 requests"),
        ({"canary": SideCounts(None, None, ()), "stable": SideCounts(9000, 45, ())}, "no canary requests"),
        ({"canary": SideCounts(1000, 5, ()), "stable": SideCounts(0, 0, ())}, "no GA requests"),
        ({"canary": SideCounts(1000, None, ()), "stable": SideCounts(9000, 45, ())}, "not numbers"),
    ],
)
def test_too_few_or_missing_counts_are_inconclusive(counts: SequentialCounts, needle: str) -> None:
    (result,) = judge_sequential(spec(ERRORS), counts, since=SINCE)
    assert result.verdict == "inconclusive"
    assert needle in result.detail


def test_few_requests_with_overwhelming_evidence_still_fail() -> None:
    counts: SequentialCounts = {"canary": SideCounts(60, 30, ()), "stable": SideCounts(9000, 9, ())}
    (result,) = judge_sequential(spec(ERRORS), counts, since=SINCE)
    assert result.verdict == "fail"


def test_buckets_missing_or_not_finite_are_inconclusive() -> None:
    for canary in ((), ((25.0, math.nan), (math.inf, 10.0))):
        counts: SequentialCounts = {
            "canary": SideCounts(1000, 0, canary),
            "stable": SideCounts(9000, 0, histogram(9000, FAST)),
        }
        (result,) = judge_sequential(spec(LATENCY), counts, since=SINCE)
        assert (result.verdict, result.detail) == ("inconclusive", "no canary requests recorded since the step")
    mismatched: SequentialCounts = {
        "canary": SideCounts(1000, 0, ((10.0, 500.0), (math.inf, 1000.0))),
        "stable": SideCounts(9000, 0, histogram(9000, FAST)),
    }
    (result,) = judge_sequential(spec(LATENCY), mismatched, since=SINCE)
    assert result.verdict == "inconclusive" and "different bucket bounds" in result.detail


def test_an_unreachable_prometheus_or_an_unknown_step_time_is_inconclusive() -> None:
    down = CountingMetrics({}, unreachable=True)
    analysis = run_analysis(spec(ERRORS), down, AT, since=SINCE)
    assert analysis.verdict == "inconclusive"
    assert "cannot connect" in analysis.checks[0].detail
    unknown = run_analysis(spec(ERRORS), CountingMetrics({}), AT, since=None)
    assert unknown.verdict == "inconclusive" and "unknown" in unknown.checks[0].detail
    nothing = run_analysis(spec(ERRORS), CountingMetrics({}), AT, since=SINCE)
    assert nothing.verdict == "inconclusive" and "no canary requests" in nothing.summary


def test_a_guardrail_and_a_sequential_check_combine() -> None:
    guard, errors = CheckSpec("success-rate", min=99), CheckSpec("error-rate", margin=0.2)
    counts = {"podinfo-canary": (4000.0, 80.0), "podinfo-ga": (36000.0, 360.0)}
    queries = build_queries(spec(guard, errors))
    # The window passes the guardrail (99.5%); the counts since the step show twice GA's errors.
    answers = {
        queries["requests:canary"]: 500.0,
        queries["requests:stable"]: 4500.0,
        queries["0:success-rate:canary"]: 99.5,
    }
    analysis = run_analysis(spec(guard, errors), CountingMetrics(counts, instants=answers), AT, since=SINCE)
    assert [(c.name, c.verdict) for c in analysis.checks] == [
        ("requests", "pass"),
        ("success-rate", "pass"),
        ("error-rate", "fail"),
    ]
    assert analysis.verdict == "fail"
    assert analysis.summary.startswith("error-rate 2% vs GA 1%; e = ")
    text = render_evidence(analysis)
    lines = text.splitlines()
    assert lines[0] == "| Check | Canary | GA | Threshold | Verdict | Window |"
    assert lines[2].startswith("| requests | 500 | 4500 |") and lines[3].startswith("| success-rate | 99.50% |")
    header = next(line for line in lines if line.startswith("| Sequential check"))
    assert header.split(" | ")[1:7] == ["Canary", "GA", "Effect", "e-value", "p-value", "Threshold"]
    row = next(line for line in lines if line.startswith("| error-rate"))
    cells = [cell.strip() for cell in row.strip("|").split(" | ")]
    assert cells[1:4] == ["2%", "1%", "2.00x"]
    assert float(cells[4]) >= 20 and float(cells[5]) == pytest.approx(1 / float(cells[4]), rel=1e-2)
    assert cells[6] == "e >= 20 (alpha 0.05, margin +20%)"
    assert cells[7].startswith("fail (")
    assert cells[8] == "4000 / 36000"
    assert cells[9] == "2026-01-05 12:00:00Z"
    assert lines[-1].startswith("**Verdict: fail**")


def test_only_sequential_checks_render_without_the_window_table() -> None:
    counts = {"podinfo-canary": (1000.0, 5.0), "podinfo-ga": (9000.0, 45.0)}
    analysis = run_analysis(spec(ERRORS), CountingMetrics(counts), AT, since=SINCE)
    text = render_evidence(analysis)
    assert text.startswith("| Sequential check |")
    assert "| Check |" not in text and "**Verdict: pass**" in text


@pytest.mark.parametrize(
    ("check", "needle"),
    [
        ("{name: error-rate, max: 1.0}", "takes alpha and margin, not max"),
        ("{name: error-rate, max: 0}", "takes alpha and margin, not max"),
        ("{name: latency, alpha: 1.5}", "alpha: Input should be less than 1"),
        ("{name: error-rate, margin: -0.1}", "margin: Input should be greater than or equal to 0"),
        ("{name: error-rate, margin: .inf}", "margin: Input should be a finite number"),
        ("{name: latency, test: threshold}", "for a fixed threshold use latency-p99"),
        ("{name: success-rate, min: 99, test: sequential}", "sequential checks are error-rate and latency"),
        ("{name: latency-p99, max: 500, alpha: 0.05}", "takes no test, alpha or margin"),
    ],
)
def test_bad_sequential_checks_are_refused(tmp_path: Path, check: str, needle: str) -> None:
    # The policy loader is the one validator of a check: the analysis takes the checks it is given.
    text = load_refusal(tmp_path, CANARY.replace("{name: success-rate, min: 99}", check, 1))
    assert ":29: spec.canaries[0].analysis.checks[0]" in text, text
    assert needle in text, text


SEQUENTIAL_POLICY = CANARY.replace(
    "          - {name: success-rate, min: 99}\n",
    "          - {name: success-rate, min: 99}\n"
    "          - {name: error-rate, test: sequential, alpha: 0.05, margin: 0.5}\n"
    "          - {name: latency, test: sequential, alpha: 0.01}\n",
)


def test_a_policy_chooses_the_test_per_check(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, SEQUENTIAL_POLICY))
    checks = [check.spec() for check in policy.spec.canaries[0].analysis.checks]
    assert [(c.name, c.sequential, c.alpha_value, c.margin_value) for c in checks] == [
        ("success-rate", False, 0.05, 0.0),
        ("error-rate", True, 0.05, 0.5),
        ("latency", True, 0.01, 0.0),
    ]


AT_CHECKS = "spec.canaries[0].analysis.checks"


@pytest.mark.parametrize(
    ("old", "new", "where", "needle"),
    [
        ("alpha: 0.01}", "alpha: 0}", f"31: {AT_CHECKS}[2].alpha", "greater than 0"),
        ("alpha: 0.01}", "alpha: 1}", f"31: {AT_CHECKS}[2].alpha", "less than 1"),
        ("margin: 0.5}", "margin: -1}", f"30: {AT_CHECKS}[1].margin", "greater than or equal"),
        ("margin: 0.5}", "margin: .nan}", f"30: {AT_CHECKS}[1].margin", "finite"),
        ("test: sequential, alpha: 0.01", "test: bayes, alpha: 0.01", f"31: {AT_CHECKS}[2].test", "'sequential'"),
        ("{name: latency, test: sequential", "{name: latency, test: threshold", f"31: {AT_CHECKS}[2]", "latency-p99"),
        (
            "{name: success-rate, min: 99}",
            "{name: success-rate, min: 99, alpha: 0.1}",
            f"29: {AT_CHECKS}[0]",
            "no test",
        ),
        ("alpha: 0.01}", "alpha: 0.01, maxRatio: 2}", f"31: {AT_CHECKS}[2]", "not maxRatio"),
    ],
)
def test_sequential_mistakes_name_file_line_and_field(
    tmp_path: Path, old: str, new: str, where: str, needle: str
) -> None:
    assert old in SEQUENTIAL_POLICY
    path = write(tmp_path, SEQUENTIAL_POLICY.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    text = info.value.one_line()
    assert text.startswith(f"{path}:{where}: "), text
    assert needle in text, text
