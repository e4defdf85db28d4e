"""The anytime-valid tests of gitbot.sequential: known values, monotonicity, false alarms, tri-state marks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import beta as beta_dist

from gitbot.sequential import (
    Comparison,
    error_rate_test,
    histogram_quantile,
    latency_test,
    log_e_value,
    mark,
    p_value,
)

BOUNDS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, math.inf)


def test_no_events_is_no_evidence() -> None:
    assert log_e_value(0, 0, 0.1) == 0.0
    assert error_rate_test(1000, 0, 9000, 0).e_value == 1.0


def test_a_uniform_mixture_over_the_upper_half_has_its_closed_form() -> None:
    # theta0 = 0.5: the prior is uniform on (0.5, 1), so e(3 of 3) = 2 * integral of t^3 over (0.5, 1) / 0.5^3.
    assert math.exp(log_e_value(3, 3, 0.5)) == pytest.approx(3.75, rel=1e-9)
    # One hit and one miss: 2 * integral of t(1 - t) over (0.5, 1) / 0.25 = 2 * (1/12) / 0.25.
    assert math.exp(log_e_value(1, 2, 0.5)) == pytest.approx(2 / 3, rel=1e-9)


@pytest.mark.parametrize(("hits", "trials", "theta0"), [(7, 20, 0.1), (0, 15, 0.1), (30, 60, 0.3), (2, 5, 0.9)])
def test_the_e_value_is_the_truncated_beta_mixture_integrated(hits: int, trials: int, theta0: float) -> None:
    concentration = max(2.0, 1.0 / min(theta0, 1 - theta0))
    a, b = concentration * theta0, concentration * (1 - theta0)

    def integrand(t: float) -> float:
        return float(t**hits * (1 - t) ** (trials - hits) * beta_dist.pdf(t, a, b))

    mass = float(beta_dist.sf(theta0, a, b))
    marginal = integrate.quad(integrand, theta0, 1, epsabs=0, epsrel=1e-11)[0] / mass
    expected = marginal / (theta0**hits * (1 - theta0) ** (trials - hits))
    assert math.exp(log_e_value(hits, trials, theta0)) == pytest.approx(expected, rel=1e-7)


def test_more_canary_errors_is_more_evidence_and_more_ga_errors_less() -> None:
    by_canary = [error_rate_test(1000, errors, 9000, 45).e_value for errors in range(0, 30, 3)]
    assert by_canary == sorted(by_canary) and by_canary[-1] > by_canary[0]
    by_ga = [error_rate_test(1000, 12, 9000, errors).e_value for errors in range(10, 100, 10)]
    assert by_ga == sorted(by_ga, reverse=True) and by_ga[0] > by_ga[-1]


def test_a_wider_margin_needs_more_evidence() -> None:
    e_values = [error_rate_test(1000, 15, 9000, 45, margin).e_value for margin in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert e_values == sorted(e_values, reverse=True) and e_values[0] > 20 > e_values[-1]


def test_the_effect_is_the_ratio_of_error_rates() -> None:
    result = error_rate_test(1000, 10, 9000, 45)
    assert result.canary == pytest.approx(1.0)
    assert result.stable == pytest.approx(0.5)
    assert result.effect == pytest.approx(2.0)
    assert p_value(result.e_value) == pytest.approx(min(1.0, 1 / result.e_value))
    assert error_rate_test(1000, 3, 9000, 0).effect is None


def _buckets(total: float, fractions_under: tuple[float, ...]) -> list[tuple[float, float]]:
    return [(bound, total * fraction) for bound, fraction in zip(BOUNDS, fractions_under, strict=True)]


GA_SHAPE = (0.05, 0.2, 0.5, 0.8, 0.95, 0.99, 0.998, 1.0, 1.0)
# The same distribution with every latency a bit longer: fewer requests under each bound.
SLOWER_SHAPE = (0.03, 0.12, 0.35, 0.65, 0.88, 0.96, 0.99, 0.999, 1.0)


def test_histogram_quantile_interpolates_within_the_bucket_as_prometheus_does() -> None:
    buckets = [(25.0, 900.0), (50.0, 900.0), (100.0, 980.0), (250.0, 1000.0), (math.inf, 1000.0)]
    assert histogram_quantile(0.99, buckets) == pytest.approx(175.0)
    assert histogram_quantile(0.5, buckets) == pytest.approx(25 * 500 / 900)
    assert histogram_quantile(0.99, [(10.0, 0.0), (math.inf, 0.0)]) is None
    # Beyond the last finite bound: that bound.
    assert histogram_quantile(0.99, [(10.0, 50.0), (math.inf, 100.0)]) == 10.0


def test_a_slower_canary_is_more_evidence_than_an_identical_one() -> None:
    same = latency_test(_buckets(1000, GA_SHAPE), _buckets(9000, GA_SHAPE))
    slower = latency_test(_buckets(1000, SLOWER_SHAPE), _buckets(9000, GA_SHAPE))
    faster = latency_test(_buckets(1000, GA_SHAPE), _buckets(9000, SLOWER_SHAPE))
    assert faster.e_value < same.e_value < 1 < 20 < slower.e_value
    assert slower.effect is not None and slower.effect > 1
    assert same.effect == pytest.approx(1.0)


def test_latency_evidence_grows_with_the_requests_behind_it() -> None:
    e_values = [latency_test(_buckets(n, SLOWER_SHAPE), _buckets(9 * n, GA_SHAPE)).e_value for n in (50, 200, 800)]
    assert e_values == sorted(e_values)


@pytest.mark.parametrize(
    ("canary", "stable", "needle"),
    [
        ([(10.0, 5.0), (math.inf, 5.0)], [(20.0, 5.0), (math.inf, 5.0)], "different bucket bounds"),
        ([(10.0, 5.0)], [(10.0, 5.0)], "+Inf bucket"),
        ([(10.0, 0.0), (math.inf, 0.0)], [(10.0, 5.0), (math.inf, 5.0)], "both sides need requests"),
        ([(10.0, -1.0), (math.inf, 5.0)], [(10.0, 5.0), (math.inf, 5.0)], "finite and >= 0"),
    ],
)
def test_histograms_that_cannot_be_compared_are_refused(
    canary: list[tuple[float, float]], stable: list[tuple[float, float]], needle: str
) -> None:
    with pytest.raises(ValueError, match=needle.replace("+", r"\+")):
        latency_test(canary, stable)


def test_counts_that_are_not_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        error_rate_test(0, 0, 100, 1)
    with pytest.raises(ValueError):
        error_rate_test(100, math.nan, 100, 1)
    with pytest.raises(ValueError):
        log_e_value(3, 2, 0.5)
    with pytest.raises(ValueError):
        log_e_value(1, 2, 1.0)


def test_the_marks_are_tri_state() -> None:
    strong, weak = Comparison(1.0, 0.5, 2.0, 25.0), Comparison(1.0, 0.9, 1.1, 3.0)
    # Evidence is valid at any sample size: a crossing fails even before the request minimum.
    assert mark(strong, 0.05, enough=False) == "fail"
    assert mark(strong, 0.01, enough=True) == "pass"
    assert mark(weak, 0.05, enough=True) == "pass"
    assert mark(weak, 0.05, enough=False) == "inconclusive"
    assert mark(None, 0.05, enough=True) == "inconclusive"
    assert mark(Comparison(None, None, None, math.nan), 0.05, enough=True) == "inconclusive"
    with pytest.raises(ValueError):
        mark(weak, 1.0, enough=True)


def test_identical_canaries_checked_every_cycle_are_falsely_failed_at_most_alpha_of_the_time() -> None:
    """A/A: 300 canaries like GA (0.5% errors, 10% of 200-2,000 requests a cycle), judged each of 30 cycles."""
    rng = np.random.default_rng(20261205)
    alpha, canaries, cycles = 0.05, 300, 30
    fails_errors = fails_latency = 0
    shape = np.diff(np.array((0.0, *GA_SHAPE)))
    for _ in range(canaries):
        counts = np.zeros(4)
        hist_c, hist_g = np.zeros(len(BOUNDS)), np.zeros(len(BOUNDS))
        failed_errors = failed_latency = False
        for _ in range(cycles):
            total = int(rng.integers(200, 2001))
            canary = int(rng.binomial(total, 0.1))
            counts += (canary, rng.binomial(canary, 0.005), total - canary, rng.binomial(total - canary, 0.005))
            hist_c += rng.multinomial(canary, shape)
            hist_g += rng.multinomial(total - canary, shape)
            if not failed_errors:
                failed_errors = mark(error_rate_test(*counts), alpha, enough=True) == "fail"
            if not failed_latency:
                c = list(zip(BOUNDS, np.cumsum(hist_c), strict=True))
                g = list(zip(BOUNDS, np.cumsum(hist_g), strict=True))
                failed_latency = mark(latency_test(c, g), alpha, enough=True) == "fail"
        fails_errors += failed_errors
        fails_latency += failed_latency
    assert fails_errors / canaries <= alpha
    assert fails_latency / canaries <= alpha


def test_a_canary_with_twice_the_errors_is_caught_by_the_counts() -> None:
    rng = np.random.default_rng(7)
    caught = 0
    for _ in range(50):
        canary, stable = 8000, 72000
        counts = (canary, rng.binomial(canary, 0.01), stable, rng.binomial(stable, 0.005))
        caught += mark(error_rate_test(*counts), 0.05, enough=True) == "fail"
    assert caught >= 35
