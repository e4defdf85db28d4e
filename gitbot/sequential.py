"""Anytime-valid comparisons of a canary with GA from cumulative counts: e-values that stay valid however often
they are looked at.

This module owns the statistics of the sequential checks, and nothing else: it is pure (numbers in, numbers
out) and knows nothing of Prometheus, policies or rendering. The method follows

- M. Lindon, C. Sanden, V. Shirikian, "Rapid Regression Detection in Software Deployments through Sequential
  Testing", KDD 2022 (arXiv:2205.14762): canary and control as counting processes, and sequential tests of
  stochastic order for latency;
- M. Lindon, A. Malek, "Anytime-Valid Inference for Multinomial Count Data", NeurIPS 2022 (arXiv:2011.03567):
  conditioned on an event happening, which arm it happened in is a multinomial draw, and a Dirichlet mixture
  of likelihood ratios is a test martingale for a hypothesis about its probabilities.

Errors. Canary and GA 5xx responses are counting processes; per request, a response fails with probability
`p_c` (canary) or `p_g` (GA). Given the request counts `n_c`, `n_g` and the total number of errors `E`, the
canary's share of the errors is (to the Poisson approximation) Binomial(E, theta) with
`theta = n_c p_c / (n_c p_c + n_g p_g)`. The null "the canary's error rate is at most (1 + margin) times GA's"
is `theta <= theta0 = n_c (1 + margin) / (n_c (1 + margin) + n_g)`. The e-value is a Beta mixture, over
`theta > theta0` only, of the likelihood ratio against `theta0` (the two-arm case of the Dirichlet-multinomial
test). Each ratio with `theta > theta0` is a supermartingale under every `theta <= theta0`, so the mixture is
one for the whole one-sided null, and by Ville's inequality it crosses `1/alpha` with probability at most
`alpha`, however often it is checked. Under an exact null the canary's share of `E` errors is
hypergeometric, which is less spread out than the binomial, so the binomial e-value is conservative there.

Latency. Istio's request-duration histogram gives, per bucket bound `le`, how many requests took longer. For
each bound the question "does the canary exceed `le` more often than GA (by more than the margin)?" is the
same two-arm count test. The canary is stochastically no slower than GA when no bound shows that; the mean of
the per-bound e-values is an e-value for that intersection of nulls (a mean of e-processes is one), so the
latency test needs no raw samples and no choice of quantile.

Every e-value is a function of the cumulative counts since the step landed, so a restarted judge computes the
same number. The anytime-valid p-value reported with it is `min(1, 1/e)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Mark = Literal["pass", "fail", "inconclusive"]
# Cumulative histogram: (upper bound, requests at or under it), ascending bounds, +Inf last.
Buckets = Sequence[tuple[float, float]]


def _prior(theta0: float) -> tuple[float, float]:
    """Beta prior centred on theta0 with a spread of about theta0 itself (alternatives of a few times the rate).

    A prior much wider than the effects worth detecting spends its mass on absurd alternatives and detects late;
    much narrower cannot tell noise from a small drift. Its concentration depends on theta0 only.
    """
    concentration = max(2.0, 1.0 / min(theta0, 1.0 - theta0))
    return concentration * theta0, concentration * (1.0 - theta0)


def _log_upper_tail(a: float, b: float, x: float) -> float:
    """log P(Beta(a, b) > x)."""
    # Imported here: SciPy takes longer to load than the rest of a command, which most policies never need.
    from scipy.special import betainc

    tail = float(betainc(b, a, 1.0 - x))
    return math.log(tail) if tail > 0 else -math.inf


def log_e_value(hits: float, trials: float, theta0: float) -> float:
    """log of the e-value against `theta <= theta0` after `hits` of `trials` Binomial(trials, theta) events.

    The mixture is over `theta` in (theta0, 1) with a Beta prior (see `_prior`) truncated there. No trials give
    exactly 0 (an e-value of 1: no evidence either way).
    """
    if not 0.0 < theta0 < 1.0:
        raise ValueError(f"theta0 must be in (0, 1), got {theta0}")
    if trials < 0 or hits < 0 or hits > trials or not (math.isfinite(hits) and math.isfinite(trials)):
        raise ValueError(f"need 0 <= hits <= trials, got {hits} of {trials}")
    if trials == 0:
        return 0.0
    from scipy.special import betaln

    a, b = _prior(theta0)
    misses = trials - hits
    # Mixture marginal over the truncated prior, divided by the likelihood at theta0.
    marginal = betaln(a + hits, b + misses) - betaln(a, b)
    truncation = _log_upper_tail(a + hits, b + misses, theta0) - _log_upper_tail(a, b, theta0)
    at_null = hits * math.log(theta0) + misses * math.log1p(-theta0)
    return float(marginal + truncation - at_null)


def _e(log_value: float) -> float:
    return math.exp(min(log_value, 700.0))


@dataclass(frozen=True)
class Comparison:
    """One sequential comparison: the canary's and GA's figures, the effect, the e-value and its p-value."""

    canary: float | None
    stable: float | None
    effect: float | None  # canary / GA (None when GA's figure is 0 or missing)
    e_value: float


def p_value(e_value: float) -> float:
    """The anytime-valid p-value of an e-value: min(1, 1/e)."""
    return min(1.0, 1.0 / e_value) if e_value > 0 else 1.0


def _theta0(canary_requests: float, stable_requests: float, margin: float) -> float:
    weighted = canary_requests * (1.0 + margin)
    return weighted / (weighted + stable_requests)


def _check_counts(*counts: float) -> None:
    for count in counts:
        if not math.isfinite(count) or count < 0:
            raise ValueError(f"counts must be finite and >= 0, got {count}")


def error_rate_test(
    canary_requests: float, canary_errors: float, stable_requests: float, stable_errors: float, margin: float = 0.0
) -> Comparison:
    """Evidence that the canary's error rate exceeds (1 + margin) x GA's, from cumulative counts.

    Figures are error rates in percent; the effect is their ratio. Both sides need requests (ValueError else).
    """
    _check_counts(canary_requests, canary_errors, stable_requests, stable_errors)
    if canary_requests <= 0 or stable_requests <= 0:
        raise ValueError("both sides need requests")
    if margin < 0 or not math.isfinite(margin):
        raise ValueError(f"margin must be >= 0, got {margin}")
    canary_errors, stable_errors = min(canary_errors, canary_requests), min(stable_errors, stable_requests)
    rate_c = 100.0 * canary_errors / canary_requests
    rate_g = 100.0 * stable_errors / stable_requests
    theta0 = _theta0(canary_requests, stable_requests, margin)
    log_e = log_e_value(canary_errors, canary_errors + stable_errors, theta0)
    return Comparison(rate_c, rate_g, rate_c / rate_g if rate_g > 0 else None, _e(log_e))


def _normalised(buckets: Buckets) -> list[tuple[float, float]]:
    """Ascending bounds with non-decreasing counts; counts a rate extrapolation left out of order are evened."""
    out: list[tuple[float, float]] = []
    for bound, count in sorted(buckets):
        _check_counts(count)
        if out and bound == out[-1][0]:
            raise ValueError(f"bucket bound {bound} appears twice")
        out.append((bound, max(count, out[-1][1]) if out else count))
    if not out or out[-1][0] != math.inf:
        raise ValueError("a histogram needs its +Inf bucket")
    return out


def histogram_quantile(q: float, buckets: Buckets) -> float | None:
    """The q-quantile of a cumulative histogram, interpolated linearly within its bucket (as Prometheus does).

    None without requests. A quantile in the +Inf bucket is the highest finite bound.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    data = _normalised(buckets)
    total = data[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in data:
        if count >= rank:
            if bound == math.inf:
                return lower_bound if len(data) > 1 else None
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return data[-2][0] if len(data) > 1 else None


def latency_test(canary: Buckets, stable: Buckets, margin: float = 0.0, quantile: float = 0.99) -> Comparison:
    """Evidence that the canary's latency is stochastically worse than GA's, from cumulative bucket counts.

    The figures shown are each side's `quantile` (milliseconds, interpolated as Prometheus does) and their ratio;
    the e-value is the mean over the finite bucket bounds of the two-arm test of "slower than the bound".
    Both histograms must have the same bounds and requests on both sides (ValueError else).
    """
    if margin < 0 or not math.isfinite(margin):
        raise ValueError(f"margin must be >= 0, got {margin}")
    c_data, g_data = _normalised(canary), _normalised(stable)
    if [b for b, _ in c_data] != [b for b, _ in g_data]:
        raise ValueError("canary and GA histograms have different bucket bounds")
    n_c, n_g = c_data[-1][1], g_data[-1][1]
    if n_c <= 0 or n_g <= 0:
        raise ValueError("both sides need requests")
    theta0 = _theta0(n_c, n_g, margin)
    e_values = []
    for (_, under_c), (_, under_g) in zip(c_data[:-1], g_data[:-1], strict=True):
        slow_c, slow_g = max(n_c - under_c, 0.0), max(n_g - under_g, 0.0)
        e_values.append(_e(log_e_value(slow_c, slow_c + slow_g, theta0)))
    e_value = sum(e_values) / len(e_values) if e_values else 1.0
    q_c, q_g = histogram_quantile(quantile, c_data), histogram_quantile(quantile, g_data)
    effect = q_c / q_g if q_c is not None and q_g else None
    return Comparison(q_c, q_g, effect, e_value)


def mark(comparison: Comparison | None, alpha: float, enough: bool) -> Mark:
    """The tri-state verdict: fail once e >= 1/alpha (valid at any sample size); pass only with enough data."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if comparison is None or not math.isfinite(comparison.e_value):
        return "inconclusive"
    if comparison.e_value >= 1.0 / alpha:
        return "fail"
    return "pass" if enough else "inconclusive"
