"""Notifications: Slack incoming webhooks and a generic JSON webhook (httpx).

Owns the payload shapes and the delivery rules: a short timeout per read and a deadline per post (a
receiver that drips its answer is cut there, and not tried again), one retry on a 5xx answer or another
transport error, and never an exception into the cycle. A failed notification is logged with the notifier
kind, the event and the status or error class (a cut one with the receiver's host); never with the URL, which
carries the webhook's secret.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from gitbot.adapters.deadline import HttpxDeadline
from gitbot.config import Policy, pointer_to_field, secret_from_env
from gitbot.errors import ConfigError
from gitbot.logs import log_event
from gitbot.ports import Notifier

_log = logging.getLogger("gitbot.notify")
# Called with (system, outcome) for every request, e.g. ServiceMetrics.api_request.
RequestRecorder = Callable[[str, str], None]
# Slack's limits for a section: 3000 characters of text, 10 fields of 2000 characters.
_SLACK_TEXT = 3000
_SLACK_FIELDS = 10
_SLACK_FIELD_TEXT = 2000
# Seconds one post may take in all, however its answer arrives (each read waits `timeout` at most).
POST_DEADLINE = 10.0
_ICONS = {
    "change-delivered": ":rocket:",
    "rollback": ":rewind:",
    "canary-attention": ":grey_question:",
    "cycle-failed": ":warning:",
}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _JsonPoster:
    """POSTs one JSON document with a timeout and one retry; reports success, never raises."""

    kind = "webhook"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        retry_delay: float = 1.0,
        policy: str | None = None,
        on_request: RequestRecorder | None = None,
        deadline: float = POST_DEADLINE,
    ) -> None:
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"a {self.kind} URL must start with https:// or http://")
        try:
            httpx.URL(url)
        except httpx.InvalidURL:
            # httpx would refuse it at the first post, deep inside a cycle; say so at start, without the value.
            raise ConfigError(f"a {self.kind} URL is not a valid URL (its value is not shown)") from None
        self._url = url
        self._timeout = timeout
        self._deadline = deadline
        self._retry_delay = retry_delay
        self._on_request = on_request
        self.policy = policy

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url=***)"

    def _count(self, outcome: str) -> None:
        if self._on_request is not None:
            self._on_request(self.kind, outcome)

    def _post(self, event: str, payload: Mapping[str, Any]) -> bool:
        problem = ""
        for attempt in (1, 2):
            watch = HttpxDeadline(self._deadline)
            try:
                with httpx.Client(timeout=self._timeout, follow_redirects=False) as client, watch.within():
                    response = client.post(self._url, json=payload, extensions={"trace": watch.trace})
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                problem = exc.__class__.__name__
                self._count("transport-error")
                if watch.cut.is_set():
                    # A receiver that drips would hold the cycle as long again: not tried a second time.
                    host = httpx.URL(self._url).netloc.decode("ascii", "replace").rpartition("@")[2]
                    problem = f"no complete answer from {host} within {self._deadline:g} s; cut off"
                    break
            else:
                if response.status_code < 300:
                    self._count("ok")
                    log_event(_log, "notification sent", level=logging.DEBUG, notifier=self.kind, notify_event=event)
                    return True
                problem = f"HTTP {response.status_code}"
                if response.status_code < 500:
                    self._count("4xx")
                    break
                self._count("5xx")
            if attempt == 1:
                time.sleep(self._retry_delay)
        log_event(
            _log,
            "notification failed",
            level=logging.WARNING,
            notifier=self.kind,
            notify_event=event,
            policy=self.policy,
            problem=problem,
        )
        return False


class SlackNotifier(_JsonPoster):
    """Posts to a Slack incoming webhook: `text` as fallback, blocks with the text, fields and event."""

    kind = "slack"

    def __init__(
        self,
        webhook_url: str,
        *,
        timeout: float = 5.0,
        retry_delay: float = 1.0,
        policy: str | None = None,
        on_request: RequestRecorder | None = None,
        deadline: float = POST_DEADLINE,
    ) -> None:
        super().__init__(
            webhook_url,
            timeout=timeout,
            retry_delay=retry_delay,
            policy=policy,
            on_request=on_request,
            deadline=deadline,
        )

    def payload(self, event: str, text: str, fields: Mapping[str, str]) -> dict[str, Any]:
        icon = _ICONS.get(event, ":information_source:")
        headline = _clip(f"{icon} {text}", _SLACK_TEXT)
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": headline}}]
        items = list(fields.items())
        if items:
            blocks.append(
                {
                    "type": "section",
                    "fields": [
                        {"type": "mrkdwn", "text": _clip(f"*{key}*\n{value}", _SLACK_FIELD_TEXT)}
                        for key, value in items[:_SLACK_FIELDS]
                    ],
                }
            )
        context = f"gitbot · {event}" + (f" · policy {self.policy}" if self.policy else "")
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
        return {"text": headline, "blocks": blocks}

    def notify(self, event: str, text: str, fields: Mapping[str, str]) -> None:
        self._post(event, self.payload(event, text, fields))


class WebhookNotifier(_JsonPoster):
    """Posts `{"event", "text", "fields", "policy"}` as JSON to any URL."""

    kind = "webhook"

    def payload(self, event: str, text: str, fields: Mapping[str, str]) -> dict[str, Any]:
        return {"event": event, "text": text, "fields": dict(fields), "policy": self.policy}

    def notify(self, event: str, text: str, fields: Mapping[str, str]) -> None:
        self._post(event, self.payload(event, text, fields))


def notifiers_for(
    policy: Policy, env: Mapping[str, str], *, timeout: float = 5.0, on_request: RequestRecorder | None = None
) -> list[Notifier]:
    """One notifier per entry of `policy`'s notifications; ConfigError when a named variable is unset."""
    out: list[Notifier] = []
    for index, notification in enumerate(policy.spec.notifications):
        if notification.slack is not None:
            url = _url(policy, env, notification.slack.webhook_env, f"/spec/notifications/{index}/slack/webhookEnv")
            out.append(SlackNotifier(url, timeout=timeout, policy=policy.name, on_request=on_request))
        elif notification.webhook is not None:
            url = _url(policy, env, notification.webhook.url_env, f"/spec/notifications/{index}/webhook/urlEnv")
            out.append(WebhookNotifier(url, timeout=timeout, policy=policy.name, on_request=on_request))
    return out


def _url(policy: Policy, env: Mapping[str, str], name: str, pointer: str) -> str:
    field = pointer_to_field(pointer)
    try:
        url = secret_from_env(env, name, field=field)
    except ConfigError as exc:
        raise ConfigError(exc.message, where=policy.where(pointer), hint="set it where gitbot runs") from None
    # A secret read from a file (a Kubernetes Secret made with --from-file) often ends with a newline.
    url = url.strip() if url is not None else None
    try:
        invalid = url is None or not url.startswith(("https://", "http://")) or not httpx.URL(url).host
    except httpx.InvalidURL:
        invalid = True
    if invalid or url is None:
        raise ConfigError(
            f"environment variable {name} (named by {field}) must hold an http(s) URL; its value is not shown",
            where=policy.where(pointer),
        )
    return url
