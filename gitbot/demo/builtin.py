"""Built-in, in-memory stand-ins for the registry, Prometheus and the clock, for machines without servers.

Owns three small implementations of `gitbot.ports`: `ManualClock` (time moves only when told),
`MemoryRegistry` (tag lists kept in a dict, tags published as the caller says) and `MemoryMetrics` (counter
and histogram samples kept in memory, answering the PromQL the Prometheus adapter writes for each figure). They talk to
nothing outside the process. They must not be used where a real server is configured: the composition root
picks them only when a real one is missing or when asked to.

`MemoryMetrics` understands exactly these query shapes, combined with `+ - * /`, parentheses, numbers,
`vector(<number>)` and `or`: `sum(increase(<metric>{<matchers>}[<window>]))` and
`histogram_quantile(<q>, sum by (le) (rate(<metric>_bucket{<matchers>}[<window>])))`. Anything else is a
MetricsError naming the query, never a made-up number. Ranges include both ends and `increase` extrapolates
towards the window's edges as Prometheus 2.x does.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from gitbot.adapters.prometheus import PromqlSource
from gitbot.errors import MetricsError
from gitbot.ports import Workload

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_INCREASE = re.compile(r"sum\(increase\(([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}\[(\w+)\]\)\)")
_QUANTILE = re.compile(
    r"histogram_quantile\(([0-9.]+),\s*sum by \(le\) \(rate\(([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}\[(\w+)\]\)\)\)"
)
_VECTOR = re.compile(r"vector\(([0-9.]+)\)")
_TOKEN = re.compile(r"\s*(\$\d+|[0-9]+(?:\.[0-9]+)?|or\b|[-+*/()])")


class ManualClock:
    """`gitbot.ports.Clock` whose time moves only by `advance` or `set` (an accelerated clock)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("a clock does not run backwards")
        self._now += delta
        return self._now


class MemoryRegistry:
    """`gitbot.ports.Registry` over tags kept in memory, per image repository as the policy names it."""

    def __init__(self, tags: Mapping[str, Iterable[str]] | None = None) -> None:
        self._tags: dict[str, list[str]] = {image: list(values) for image, values in (tags or {}).items()}

    def publish(self, image: str, tag: str) -> None:
        """Make `tag` of `image` appear, as a push to a registry would."""
        known = self._tags.setdefault(image, [])
        if tag not in known:
            known.append(tag)

    def list_tags(self, image: str) -> list[str]:
        return list(self._tags.get(image, ()))


Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class _Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        return re.fullmatch(self.value, actual) is not None


def _seconds(text: str, query: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise MetricsError(f"built-in metrics: unsupported range {text!r}", where=query)
    return int(match.group(1)) * _UNITS[match.group(2)]


def _matchers(text: str, query: str) -> list[_Matcher]:
    out: list[_Matcher] = []
    position = 0
    while position < len(text):
        match = _MATCHER.match(text, position)
        if match is None:
            raise MetricsError(f"built-in metrics: cannot read label matchers {text!r}", where=query)
        out.append(_Matcher(match.group(1), match.group(2), match.group(3).replace('\\"', '"')))
        position = match.end()
    return out


class MemoryMetrics(PromqlSource):
    """`gitbot.ports.Metrics` over samples held in memory (see the module docstring for what it answers).

    Feed it with `add(name, labels, unix_seconds, value)`; each series' samples must come in ascending
    time order, as a scrape would produce them.
    """

    def __init__(self) -> None:
        self._series: dict[str, dict[Labels, tuple[list[float], list[float]]]] = defaultdict(dict)

    def add(self, name: str, labels: Mapping[str, str], at: float, value: float) -> None:
        key: Labels = frozenset(labels.items())
        times, values = self._series[name].setdefault(key, ([], []))
        if times and at <= times[-1]:
            raise ValueError(f"samples of {name}{dict(labels)} must be added in ascending time order")
        times.append(at)
        values.append(value)

    # -- the port -------------------------------------------------------------------------------------

    def instant(self, query: str, at: datetime) -> float | None:
        value = self._evaluate(query, at.timestamp())
        return None if value is None or math.isnan(value) else value

    def series(self, query: str, start: datetime, end: datetime, step_seconds: float) -> list[tuple[float, float]]:
        if step_seconds <= 0:
            raise MetricsError("built-in metrics: a range query needs a step > 0", where=query)
        out: list[tuple[float, float]] = []
        moment, last = start.timestamp(), end.timestamp()
        while moment <= last + 1e-9:
            value = self._evaluate(query, moment)
            if value is not None and not math.isnan(value):
                out.append((moment, value))
            moment += step_seconds
        return out

    def request_counts(self, workload: Workload, start: datetime, end: datetime) -> tuple[float, float] | None:
        window, at = max(end.timestamp() - start.timestamp(), 1.0), end.timestamp()
        selector = _workload_selector(workload)
        found = self._increase("istio_requests_total", selector, window, at, selector)
        if not found:
            return None
        total = sum(found.values())
        errors = sum(delta for labels, delta in found.items() if dict(labels).get("response_code", "").startswith("5"))
        return total, min(errors, total)

    def latency_buckets(self, workload: Workload, start: datetime, end: datetime) -> list[tuple[float, float]]:
        window, at = max(end.timestamp() - start.timestamp(), 1.0), end.timestamp()
        selector = _workload_selector(workload)
        buckets: dict[float, float] = defaultdict(float)
        for labels, delta in self._increase(
            "istio_request_duration_milliseconds_bucket", selector, window, at, selector
        ).items():
            le = dict(labels).get("le")
            if le is not None:
                buckets[math.inf if le == "+Inf" else float(le)] += delta
        out = sorted(buckets.items())
        return out if out and out[-1][0] == math.inf else []

    # -- evaluation -----------------------------------------------------------------------------------

    def _increase(self, name: str, selector: str, window: float, at: float, query: str) -> dict[Labels, float]:
        wanted = _matchers(selector, query)
        out: dict[Labels, float] = {}
        for labels, (times, values) in self._series.get(name, {}).items():
            as_dict = dict(labels)
            if not all(m.matches(as_dict) for m in wanted):
                continue
            low = bisect.bisect_left(times, at - window)
            high = bisect.bisect_right(times, at)
            if high - low < 2:
                continue
            out[labels] = _extrapolated_increase(times[low:high], values[low:high], at - window, at)
        return out

    def _sum_increase(self, match: re.Match[str], at: float, query: str) -> float | None:
        name, selector, window = match.groups()
        found = self._increase(name, selector, _seconds(window, query), at, query)
        return sum(found.values()) if found else None

    def _quantile(self, match: re.Match[str], at: float, query: str) -> float | None:
        q_text, name, selector, window = match.groups()
        seconds = _seconds(window, query)
        buckets: dict[float, float] = defaultdict(float)
        for labels, delta in self._increase(name, selector, seconds, at, query).items():
            le = dict(labels).get("le")
            if le is None:
                continue
            buckets[math.inf if le == "+Inf" else float(le)] += delta / seconds
        return histogram_quantile(float(q_text), sorted(buckets.items())) if buckets else None

    def _evaluate(self, query: str, at: float) -> float | None:
        values: list[float | None] = []

        def substitute(match: re.Match[str], *, quantile: bool) -> str:
            values.append(self._quantile(match, at, query) if quantile else self._sum_increase(match, at, query))
            return f" ${len(values) - 1} "

        text = _QUANTILE.sub(lambda m: substitute(m, quantile=True), query)
        text = _INCREASE.sub(lambda m: substitute(m, quantile=False), text)
        text = _VECTOR.sub(lambda m: f" {m.group(1)} ", text)
        return _Expression(_tokens(text, query), values, query).parse()


def _workload_selector(workload: Workload) -> str:
    # The analysis admits no quotes, backslashes or braces in these names, so they need no escaping here.
    values = (
        ("reporter", workload.reporter),
        ("destination_workload_namespace", workload.namespace),
        ("destination_workload", workload.name),
    )
    return ",".join(f'{name}="{value}"' for name, value in values)


def _extrapolated_increase(times: Sequence[float], values: Sequence[float], start: float, end: float) -> float:
    """Prometheus' `increase` of a counter over [start, end] from its samples there (at least two).

    Resets count from zero; the difference is extrapolated towards the window's edges by at most half a
    scrape interval (further only when the samples reach that close), and never below zero.
    """
    delta = 0.0
    for before, after in pairwise(values):
        delta += after - before if after >= before else after
    sampled = times[-1] - times[0]
    average = sampled / (len(times) - 1)
    to_start, to_end = times[0] - start, end - times[-1]
    if delta > 0 and values[0] >= 0:
        to_start = min(to_start, sampled * values[0] / delta)
    threshold = average * 1.1
    span = (
        sampled + (to_start if to_start < threshold else average / 2) + (to_end if to_end < threshold else average / 2)
    )
    return delta * span / sampled


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus' `histogram_quantile` over (upper bound, cumulative rate) pairs sorted by bound."""
    if not buckets or buckets[-1][0] != math.inf:
        return math.nan
    total = buckets[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == math.inf:
                # Prometheus answers with the highest finite bound when the rank falls in +Inf.
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def _tokens(text: str, query: str) -> list[str]:
    out: list[str] = []
    position = 0
    stripped = text.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None:
            raise MetricsError(
                f"built-in metrics cannot answer this query (near {stripped[position : position + 30]!r})",
                where=query[:120],
            )
        out.append(match.group(1))
        position = match.end()
    return out


class _Expression:
    """Recursive descent over `or` (lowest), `+ -`, `* /`, parentheses; None means "no data"."""

    def __init__(self, tokens: list[str], values: list[float | None], query: str) -> None:
        self._tokens = tokens
        self._values = values
        self._query = query
        self._at = 0

    def parse(self) -> float | None:
        value = self._or()
        if self._at != len(self._tokens):
            raise MetricsError("built-in metrics: unexpected text after the expression", where=self._query[:120])
        return value

    def _peek(self) -> str | None:
        return self._tokens[self._at] if self._at < len(self._tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise MetricsError("built-in metrics: the query ends too early", where=self._query[:120])
        self._at += 1
        return token

    def _or(self) -> float | None:
        left = self._sum()
        while self._peek() == "or":
            self._take()
            right = self._sum()
            left = left if left is not None else right
        return left

    def _sum(self) -> float | None:
        left = self._product()
        while self._peek() in ("+", "-"):
            op = self._take()
            right = self._product()
            left = None if left is None or right is None else (left + right if op == "+" else left - right)
        return left

    def _product(self) -> float | None:
        left = self._atom()
        while self._peek() in ("*", "/"):
            op = self._take()
            right = self._atom()
            if left is None or right is None:
                left = None
            elif op == "*":
                left = left * right
            else:
                left = left / right if right != 0 else math.nan
        return left

    def _atom(self) -> float | None:
        item = self._take()
        if item == "(":
            value = self._or()
            if self._take() != ")":
                raise MetricsError("built-in metrics: unbalanced parentheses", where=self._query[:120])
            return value
        if item.startswith("$"):
            return self._values[int(item[1:])]
        try:
            return float(item)
        except ValueError:
            raise MetricsError(f"built-in metrics: unexpected {item!r}", where=self._query[:120]) from None
