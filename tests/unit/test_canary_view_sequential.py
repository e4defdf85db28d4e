"""How `gitbot analyze` and `gitbot status` show sequential checks: their e-value and effect in the text rows,
and in `--json` the e-value, p-value, effect, requests on each side and since when (and GA's period at 100%)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from gitbot.analysis import (
    AnalysisSpec,
    CheckSpec,
    FullWeightCounts,
    GaReference,
    SequentialCounts,
    SideCounts,
    judge_full_weight,
    judge_sequential,
)
from gitbot.commands.canary_view import check_json, check_rows, render_canary
from gitbot.domain import Analysis, CheckResult
from gitbot.rollout import Observation
from tests.unit.test_canary_view import CHECKS, END, report
from tests.unit.test_sequential_checks import FAST, SLOW, histogram

SINCE = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
BEFORE = SINCE - timedelta(minutes=13)
SPEC = AnalysisSpec(
    "test",
    "podinfo-ga",
    "podinfo-canary",
    timedelta(minutes=5),
    100,
    (CheckSpec("success-rate", min=99), CheckSpec("error-rate", alpha=0.05), CheckSpec("latency", alpha=0.05)),
)
COUNTS: SequentialCounts = {
    "canary": SideCounts(4000, 80, histogram(4000, SLOW)),
    "stable": SideCounts(36000, 360, histogram(36000, FAST)),
}


def sequential_rows() -> tuple[CheckResult, ...]:
    return judge_sequential(SPEC, COUNTS, since=SINCE)


def test_text_rows_of_sequential_checks_show_the_e_value_and_the_effect() -> None:
    errors, latency = sequential_rows()
    assert errors.e_value is not None and latency.e_value is not None and latency.effect is not None
    rows = check_rows((CHECKS[0], errors, latency))
    assert rows[0].split()[:7] == ["✔", "pass", "requests", "canary", "600", "GA", "5400"]
    assert rows[1].split()[:7] == ["✖", "fail", "error-rate", "canary", "2%", "GA", "1%"]
    assert f"  e {errors.e_value:.3g}, effect 2.00x  " in rows[1]
    assert f"  e {latency.e_value:.3g}, effect {latency.effect:.2f}x  " in rows[2]
    assert rows[2].split()[3:9] == ["canary", f"{latency.canary:.1f}", "ms", "GA", f"{latency.stable:.1f}", "ms"]
    # The columns line up: every threshold starts at the same place.
    starts = {row.index(threshold) for row, threshold in zip(rows[1:], ("e >= 20", "e >= 20"), strict=True)}
    assert len(starts) == 1 and rows[0].index(">= 100 each") == starts.pop()


def test_windowed_checks_alone_keep_their_columns() -> None:
    assert check_rows(CHECKS)[2] == (
        "  ✖ fail          latency-p99   canary 375.0 ms  GA 175.0 ms  <= 1.5x GA             2.14x GA"
    )


def test_without_counts_the_row_says_so_with_no_numbers() -> None:
    (errors, _) = judge_sequential(SPEC, None, "query failed: cannot connect", since=SINCE)
    (row,) = check_rows((errors,))
    assert row.split()[:8] == ["?", "inconclusive", "error-rate", "canary", "-", "GA", "-", "e"]
    assert "e -, effect -" in row and row.endswith("query failed: cannot connect")


def test_json_of_a_sequential_check_has_its_evidence_and_when() -> None:
    errors, _ = sequential_rows()
    payload = json.loads(json.dumps(check_json(errors)))
    assert payload["sequential"] is True
    assert payload["e_value"] == errors.e_value and payload["p_value"] == min(1.0, 1 / payload["e_value"])
    assert payload["effect"] == 2.0
    assert payload["requests"] == {"canary": 4000, "stable": 36000}
    assert payload["since"] == "2026-01-05T12:00:00+00:00"
    assert payload["stable_period"] is None
    assert (payload["canary"], payload["stable"], payload["verdict"]) == (2.0, 1.0, "fail")
    # A windowed check keeps the keys it always had.
    assert set(check_json(CHECKS[2])) == {"name", "verdict", "canary", "stable", "threshold", "detail"}


def test_json_and_text_at_100_percent_mark_gas_side_as_before_it() -> None:
    counts = FullWeightCounts(COUNTS, SINCE, (BEFORE, SINCE))
    samples = {"requests:canary": 3000.0, "0:success-rate:canary": 99.9}
    analysis = judge_full_weight(SPEC, samples, END, GaReference(SINCE, {}), counts=counts)
    errors = next(c for c in analysis.checks if c.name == "error-rate")
    payload = check_json(errors)
    assert payload["stable_period"] == ["2026-01-05T11:47:00+00:00", "2026-01-05T12:00:00+00:00"]
    lines = render_canary(report(weight=100, observation=Observation(analysis, 100.0, None)), "production")
    (row,) = [line for line in lines if " error-rate " in line]
    assert "GA 1% before 100%" in row and "e " in row and "effect 2.00x" in row


def test_a_missing_e_value_is_null_in_json_not_a_number() -> None:
    inconclusive = CheckResult("latency", "inconclusive", None, None, "e >= 20", "no data", sequential=True)
    payload = check_json(inconclusive)
    assert (payload["e_value"], payload["p_value"], payload["effect"]) == (None, None, None)
    assert payload["requests"] == {"canary": None, "stable": None} and payload["since"] is None
    json.dumps(payload, allow_nan=False)


def test_the_analysis_line_is_unchanged_by_sequential_rows() -> None:
    analysis = Analysis("fail", (CHECKS[0], *sequential_rows()), END - timedelta(minutes=5), END, "error-rate x")
    lines = render_canary(report(observation=Observation(analysis, 10.0, None)), "production")
    assert "Analysis:      ✖ fail (error-rate x), 5m to 2026-01-05 12:20:00Z" in lines
