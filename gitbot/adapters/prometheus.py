"""The Metrics port on Prometheus's HTTP API, through prometheus-api-client.

This module owns talking to one Prometheus server: explicit evaluation timestamps on every query, string
sample values turned into floats (NaN, +-Inf into "no data"), and every failure (connection, timeout, HTTP status,
PromQL error, unexpected result shape) turned into a one-line MetricsError that names the server without
credentials. It owns every PromQL query gitbot asks (`promql`): each figure of the port written over Istio's
standard metrics and labels, and a user's custom query with its placeholders filled. It knows nothing about
canaries or verdicts.
"""

from __future__ import annotations

import ast
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from gitbot.adapters.deadline import DeadlineAdapter, DeadlineExceeded
from gitbot.errors import ConfigError, MetricsError
from gitbot.logs import mask_credentials
from gitbot.ports import (
    CanaryShare,
    CustomQuery,
    LatencyQuantile,
    Measure,
    Requests,
    SuccessRate,
    Workload,
)

# Seconds one query may take in all, however its answer arrives (each read waits `timeout` at most).
QUERY_DEADLINE = 30.0
_API_ERROR = re.compile(r"HTTP Status Code (\d+) \((b(?:'.*'|\".*\"))\)$", re.DOTALL)


def redact_url(url: str) -> str:
    """`url` without user info, query or fragment, safe for logs and error messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class PromqlSource(ABC):
    """A metrics source that runs PromQL: each typed figure of the Metrics port is written as PromQL
    (`promql`) and run through the source's `instant` and `series`."""

    @abstractmethod
    def instant(self, query: str, at: datetime) -> float | None:
        """The value of `query` at `at`; None for no data."""

    @abstractmethod
    def series(self, query: str, start: datetime, end: datetime, step_seconds: float) -> list[tuple[float, float]]:
        """`query` every `step_seconds` from `start` to `end`, as (unix seconds, value), no-data points left out."""

    def measure(self, measure: Measure, start: datetime, end: datetime) -> float | None:
        return self.instant(promql(measure, end - start), end)

    def measure_series(
        self, measure: Measure, start: datetime, end: datetime, step: timedelta, window: timedelta
    ) -> list[tuple[float, float]]:
        return self.series(promql(measure, window), start, end, step.total_seconds())


class PrometheusMetrics(PromqlSource):
    """`gitbot.ports.Metrics` for one Prometheus server.

    `retries` applies to connection errors and 408/429/5xx answers, with a short backoff; the library's
    default (three retries with one-second backoff) would make a failing server stall a cycle.
    `token` is sent as a bearer token; `headers` are added to every request. `timeout` bounds each read of an
    answer, `deadline` a whole query (retries and a dripping answer included).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10,
        deadline: float = QUERY_DEADLINE,
        retries: int = 0,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"Prometheus URL {redact_url(url)!r} is not an http(s) URL with a host",
                where="analysis.prometheus.url",
                hint="set analysis.prometheus.url to e.g. http://prometheus.istio-system:9090",
            )
        if timeout <= 0 or deadline <= 0 or retries < 0:
            raise ConfigError(
                "Prometheus timeout and deadline must be > 0 and retries >= 0", where="analysis.prometheus"
            )
        self._deadline = deadline
        self._where = redact_url(url)
        self._timeout = timeout
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=0.2,
            status_forcelist=(408, 429, 500, 502, 503, 504),
            allowed_methods=("GET",),
            # The last answer (for example a 503 body) is worth more than urllib3's MaxRetryError.
            raise_on_status=False,
        )
        session = requests.Session()
        self._client = PrometheusConnect(
            url=url.rstrip("/"), headers=all_headers or None, retry=retry, timeout=timeout, session=session
        )
        # In place of the library's adapter (mounted on the same prefix): the same retries, within the deadline.
        session.mount(self._client.url, DeadlineAdapter(deadline, max_retries=retry))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusMetrics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def instant(self, query: str, at: datetime) -> float | None:
        result = self._call(lambda: self._client.custom_query(query, params={"time": _unix(at)}, timeout=self._timeout))
        if _is_scalar(result):
            return _number(result[1], self._where)
        if not isinstance(result, list):
            raise MetricsError(f"Prometheus at {self._where} returned an unexpected answer", where=query)
        if not result:
            return None
        if len(result) > 1:
            raise MetricsError(
                f"Prometheus at {self._where} returned {len(result)} series where one was expected "
                "(aggregate the query, e.g. with sum())",
                where=_short(query),
            )
        return _number(_pair(result[0].get("value"), self._where)[1], self._where)

    def series(self, query: str, start: datetime, end: datetime, step_seconds: float) -> list[tuple[float, float]]:
        if step_seconds <= 0:
            raise MetricsError("range query step must be > 0 seconds", where=_short(query))
        result = self._call(
            lambda: self._client.custom_query_range(
                query,
                start_time=start,
                end_time=end,
                step=f"{step_seconds:g}",
                timeout=self._timeout,
            )
        )
        if not isinstance(result, list):
            raise MetricsError(f"Prometheus at {self._where} returned an unexpected answer", where=query)
        if not result:
            return []
        if len(result) > 1:
            raise MetricsError(
                f"Prometheus at {self._where} returned {len(result)} series where one was expected",
                where=_short(query),
            )
        points: list[tuple[float, float]] = []
        for raw in result[0].get("values") or []:
            stamp, text = _pair(raw, self._where)
            value = _number(text, self._where)
            if value is not None:
                points.append((float(stamp), value))
        return points

    def request_counts(self, workload: Workload, start: datetime, end: datetime) -> tuple[float, float] | None:
        window = _range(start, end)
        requests_total = self.instant(_requests(workload, window), end)
        if requests_total is None:
            return None
        # No 5xx series at all means no errors; the request total already said whether there is data.
        errors = self.instant(_server_errors(workload, window), end)
        return requests_total, min(errors or 0.0, requests_total)

    def latency_buckets(self, workload: Workload, start: datetime, end: datetime) -> list[tuple[float, float]]:
        window = _range(start, end)
        query = f"sum by (le) (increase({DURATION_BUCKET}{_istio(workload)}[{window}]))"
        at = _unix(end)
        result = self._call(lambda: self._client.custom_query(query, params={"time": at}, timeout=self._timeout))
        if not isinstance(result, list) or _is_scalar(result):
            raise MetricsError(f"Prometheus at {self._where} returned an unexpected answer", where=_short(query))
        buckets: list[tuple[float, float]] = []
        for item in result:
            bound_text = (item.get("metric") or {}).get("le") if isinstance(item, dict) else None
            if bound_text is None:
                raise MetricsError(f"Prometheus at {self._where} returned a bucket without `le`", where=_short(query))
            value = _number(_pair(item.get("value"), self._where)[1], self._where)
            try:
                bound = float(bound_text)
            except ValueError as exc:
                raise MetricsError(
                    f"Prometheus at {self._where} returned a bucket bound that is not a number: {bound_text[:40]!r}",
                    where=_short(query),
                ) from exc
            if value is None:
                return []
            buckets.append((bound, value))
        buckets.sort()
        return buckets if buckets and buckets[-1][0] == math.inf else []

    def _call(self, request: Any) -> Any:
        try:
            return request()
        except PrometheusApiClientException as exc:
            raise MetricsError(_api_error(str(exc), self._where)) from exc
        except requests.exceptions.RequestException as exc:
            # Some request errors are ValueErrors too (InvalidHeader, for a token with a newline): only a
            # body that does not decode is "not JSON".
            if isinstance(exc, requests.exceptions.JSONDecodeError):
                raise MetricsError(f"Prometheus at {self._where} returned a body that is not JSON") from exc
            if isinstance(exc, DeadlineExceeded):
                message = f"Prometheus at {self._where} sent no complete answer within {exc.seconds:g}s; cut off"
            elif _timed_out(exc):
                message = f"Prometheus at {self._where} did not answer within {self._timeout:g}s"
            elif isinstance(exc, requests.exceptions.ConnectionError):
                message = f"cannot connect to Prometheus at {self._where}"
            else:
                message = f"request to Prometheus at {self._where} failed: {type(exc).__name__}"
            raise MetricsError(message) from exc
        except ValueError as exc:  # a 200 answer whose body is not JSON (a proxy's login page, say)
            raise MetricsError(f"Prometheus at {self._where} returned a body that is not JSON") from exc


# Istio's standard metrics: requests (with `response_code`) and their latency histogram in milliseconds.
REQUESTS_TOTAL = "istio_requests_total"
DURATION_BUCKET = "istio_request_duration_milliseconds_bucket"
_PLACEHOLDERS = ("{namespace}", "{canary}", "{stable}", "{window}")


def promql_duration(window: timedelta) -> str:
    """A PromQL range duration for `window` (whole seconds), e.g. `5m`, `90s`, `1h`."""
    seconds = int(window.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def promql(measure: Measure, window: timedelta) -> str:
    """The instant query of `measure` over the `window` before its evaluation time."""
    duration = promql_duration(window)
    if isinstance(measure, Requests):
        return _requests(measure.workload, duration)
    if isinstance(measure, SuccessRate):
        # `or vector(0)`: no 5xx series at all means no errors, not "no data"; the total still decides that.
        errors = _server_errors(measure.workload, duration)
        return f"100 * (1 - ({errors} or vector(0)) / {_requests(measure.workload, duration)})"
    if isinstance(measure, LatencyQuantile):
        buckets = f"{DURATION_BUCKET}{_istio(measure.workload)}"
        return f"histogram_quantile({measure.quantile:g}, sum by (le) (rate({buckets}[{duration}])))"
    if isinstance(measure, CanaryShare):
        canary = f"({_requests(measure.canary, duration)} or vector(0))"
        stable = f"({_requests(measure.stable, duration)} or vector(0))"
        return f"100 * {canary} / ({canary} + {stable})"
    return _custom(measure, duration)


def _requests(workload: Workload, duration: str) -> str:
    return f"sum(increase({REQUESTS_TOTAL}{_istio(workload)}[{duration}]))"


def _server_errors(workload: Workload, duration: str) -> str:
    return f"sum(increase({REQUESTS_TOTAL}{_istio(workload, response_code=('=~', '5..'))}[{duration}]))"


def _custom(query: CustomQuery, duration: str) -> str:
    # Plain replacement, not str.format: PromQL label selectors use braces themselves.
    values = {
        "{namespace}": query.canary.namespace,
        "{canary}": query.canary.name,
        "{stable}": query.stable.name,
        "{window}": duration,
    }
    text = query.text
    for placeholder in _PLACEHOLDERS:
        text = text.replace(placeholder, values[placeholder])
    return text


def _unix(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise MetricsError("query time must be timezone-aware")
    return moment.timestamp()


def _range(start: datetime, end: datetime) -> str:
    """A PromQL range of the whole seconds from `start` to `end` (at least one)."""
    seconds = round(_unix(end) - _unix(start))
    return f"{max(seconds, 1)}s"


def _istio(workload: Workload, **extra: tuple[str, str]) -> str:
    """A selector of Istio's standard metrics for the requests `workload` served (values escaped for PromQL)."""
    pairs: list[tuple[str, str, str]] = [
        ("reporter", "=", workload.reporter),
        ("destination_workload_namespace", "=", workload.namespace),
        ("destination_workload", "=", workload.name),
    ]
    pairs += [(name, op, value) for name, (op, value) in extra.items()]
    return "{" + ",".join(f"{name}{op}{json.dumps(value)}" for name, op, value in pairs) + "}"


def _short(query: str) -> str:
    return query if len(query) <= 120 else query[:117] + "..."


def _is_scalar(result: Any) -> bool:
    # A scalar or string result is a bare [time, "value"] pair, not a list of series.
    return isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict)


def _pair(raw: Any, where: str) -> tuple[float, str]:
    if not (isinstance(raw, list | tuple) and len(raw) == 2):
        raise MetricsError(f"Prometheus at {where} returned a sample that is not [time, value]")
    return float(raw[0]), str(raw[1])


def _number(text: str, where: str) -> float | None:
    try:
        value = float(text)
    except ValueError as exc:
        shown = mask_credentials(text)[:40]
        raise MetricsError(f"Prometheus at {where} returned a value that is not a number: {shown!r}") from exc
    # A query dividing by zero answers NaN or an infinity: neither is a measurement.
    return value if math.isfinite(value) else None


def _timed_out(exc: BaseException) -> bool:
    # With a retry policy mounted, urllib3 reports a read timeout as MaxRetryError inside requests'
    # ConnectionError; the timeout is only visible in the wrapped reason.
    # urllib3 2 makes a refused connection (NewConnectionError) a kind of ConnectTimeoutError; it is not one.
    refused = urllib3.exceptions.NewConnectionError
    if isinstance(exc, requests.exceptions.Timeout) and not isinstance(exc, requests.exceptions.ConnectionError):
        return True
    return any(
        isinstance(arg, urllib3.exceptions.MaxRetryError)
        and isinstance(arg.reason, urllib3.exceptions.TimeoutError)
        and not isinstance(arg.reason, refused)
        for arg in exc.args
    )


def _api_error(text: str, where: str) -> str:
    """A one-line message from the library's `HTTP Status Code N (b'<body>')` text."""
    found = _API_ERROR.match(text)
    if not found:
        return f"Prometheus at {where} answered with an error"
    message = f"Prometheus at {where} answered HTTP {found.group(1)}"
    try:
        body = json.loads(ast.literal_eval(found.group(2)))
        detail = str(body.get("error", "")) if isinstance(body, dict) else ""
    except (ValueError, SyntaxError):
        detail = ""
    if detail:
        # A server or proxy may quote the credential it refused: masked whole, then shortened.
        message += ": " + mask_credentials(" ".join(detail.split()))[:200]
    return message
