"""Notifications: Slack incoming webhooks and a generic JSON webhook (httpx).

Owns the payload shapes and the delivery rules: a short timeout per read and a deadline per post (a
receiver that drips its answer is cut there, and not tried again), one retry on a 5xx answer or another
transport error, and never an exception into the cycle. A failed notification is logged with the notifier
kind, the event and the status or error class (a cut one with the receiver's host); never with the URL, which
carries the webhook's secret.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import httpx

from gitbot.adapters.deadline_httpx import HttpxDeadline
from gitbot.config import Policy, pointer_to_field, secret_from_env
from gitbot.domain import CheckResult, Notice
from gitbot.errors import ConfigError, GitbotError
from gitbot.logs import SecretMasker, log_event, process_masker
from gitbot.ports import Notifier

_log = logging.getLogger("gitbot.notify")
# Called with (system, outcome) for every request, e.g. ServiceMetrics.api_request.
RequestRecorder = Callable[[str, str], None]
# Slack's Block Kit limits: a header's plain text 150 characters, a section's text 3000, 10 fields of 2000
# characters each, 10 elements in a context block.
_SLACK_HEADER = 150
_SLACK_TEXT = 3000
_SLACK_FIELDS = 10
_SLACK_FIELD_TEXT = 2000
# Seconds one post may take in all, however its answer arrives (each read waits `timeout` at most).
POST_DEADLINE = 10.0
# The version of the generic webhook's JSON document (gitbot/schemas/notification.schema.json).
SCHEMA_VERSION = 1
_HEADERS: dict[str, tuple[str, str]] = {
    "image-update": (":package:", "Image update"),
    "canary-step": (":arrow_up_small:", "Canary step"),
    "canary-complete": (":white_check_mark:", "Canary complete"),
    "canary-promoted": (":rocket:", "Canary promoted"),
    "rollback": (":rewind:", "Rollback"),
    "canary-inconclusive": (":grey_question:", "Canary analysis inconclusive"),
    "canary-attention": (":warning:", "Canary needs attention"),
    "step-not-applied": (":hourglass:", "Canary step not applied"),
    "revert-quarantine": (":leftwards_arrow_with_hook:", "Change reverted by a person"),
    "canary-paused": (":double_vertical_bar:", "Canary paused"),
    "canary-resumed": (":arrow_forward:", "Canary resumed"),
    "cycle-failed": (":x:", "Cycle failed"),
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
        masker: SecretMasker | None = None,
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
        self._masker = masker or process_masker()
        self.policy = policy

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url=***)"

    def _count(self, outcome: str) -> None:
        if self._on_request is not None:
            self._on_request(self.kind, outcome)

    def payload(self, notice: Notice) -> dict[str, Any]:
        raise NotImplementedError

    def notify(self, notice: Notice) -> bool:
        """Post `notice`, every string of it masked; False (logged) when the receiver did not take it."""
        return self._post(notice.event, self._masker.mask_value(self.payload(notice)))

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


def _escape(text: str) -> str:
    """Text for Slack's mrkdwn: its three control characters escaped, as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(notice: Notice) -> str:
    label = "pull request" if notice.delivery in ("opened", "updated") else f"commit {notice.ref[:12]}"
    if notice.link and not any(c in notice.link for c in "<>| "):
        return f"<{notice.link}|{_escape(label)}>"
    return _escape(notice.ref) if notice.ref else ""


class SlackNotifier(_JsonPoster):
    """Posts to a Slack incoming webhook: `text` as the fallback and Block Kit blocks (header, section with
    the reason and link, section with the figures as fields, context)."""

    kind = "slack"

    def payload(self, notice: Notice) -> dict[str, Any]:
        icon, label = _HEADERS.get(notice.event, (":information_source:", notice.event))
        header = f"{label}: {notice.name}" if notice.name else label
        lines = [f"*{_escape(notice.title)}*"]
        if notice.detail and notice.detail != notice.title:
            lines.append(_escape(notice.detail))
        link = _slack_link(notice)
        if link:
            lines.append(link)
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(header, _SLACK_HEADER), "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"{icon} " + "\n".join(lines), _SLACK_TEXT)}},
        ]
        if notice.facts:
            blocks.append(
                {
                    "type": "section",
                    "fields": [
                        {"type": "mrkdwn", "text": _clip(f"*{_escape(key)}*\n{_escape(value)}", _SLACK_FIELD_TEXT)}
                        for key, value in notice.facts[:_SLACK_FIELDS]
                    ],
                }
            )
        context = f"gitbot · {notice.event} · policy {notice.policy} · from {notice.source}"
        if notice.at is not None:
            context += f" · {notice.at:%Y-%m-%d %H:%M} UTC"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _escape(context)}]})
        return {"text": _clip(f"{label}: {notice.title}", _SLACK_TEXT), "blocks": blocks}


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _check_json(check: CheckResult) -> dict[str, Any]:
    return {
        "name": check.name,
        "verdict": check.verdict,
        "canary": _finite(check.canary),
        "stable": _finite(check.stable),
        "threshold": check.threshold,
        "detail": check.detail,
        "sequential": check.sequential,
        "effect": _finite(check.effect),
        "eValue": _finite(check.e_value),
        "requests": {"canary": _finite(check.requests[0]), "stable": _finite(check.requests[1])},
        "since": check.since.isoformat() if check.since is not None else None,
    }


class WebhookNotifier(_JsonPoster):
    """Posts the JSON document that gitbot/schemas/notification.schema.json describes to any URL."""

    kind = "webhook"

    def payload(self, notice: Notice) -> dict[str, Any]:
        return {
            "schemaVersion": SCHEMA_VERSION,
            "event": notice.event,
            "source": notice.source,
            "policy": notice.policy,
            "name": notice.name,
            "text": notice.title,
            "detail": notice.detail,
            "fields": dict(notice.facts),
            "facts": [{"label": key, "value": value} for key, value in notice.facts],
            "verdict": notice.verdict,
            "checks": [_check_json(check) for check in notice.checks],
            "delivery": notice.delivery,
            "ref": notice.ref,
            "link": notice.link,
            "time": notice.at.isoformat() if notice.at is not None else None,
        }


def mask_notice(masker: SecretMasker, notice: Notice) -> Notice:
    """`notice` with every secret the process knows, and every credential by its shape, masked in its text."""
    mask = masker.mask
    return replace(
        notice,
        title=mask(notice.title),
        name=mask(notice.name),
        detail=mask(notice.detail),
        facts=tuple((mask(key), mask(value)) for key, value in notice.facts),
        checks=tuple(replace(c, detail=mask(c.detail), threshold=mask(c.threshold)) for c in notice.checks),
        ref=mask(notice.ref),
        link=mask(notice.link) if notice.link else notice.link,
    )


def send_notices(
    notifiers: Sequence[Notifier], notices: Sequence[Notice], masker: SecretMasker | None = None
) -> list[str]:
    """Post every notice, masked, to every notifier; never raises. One line per notice a notifier did not take.

    A notifier that raises (a bug, not a refused post) is logged like a refused post: the cycle or command
    that delivered the change has done its work either way.
    """
    failed: list[str] = []
    for notice in (mask_notice(masker or process_masker(), n) for n in notices):
        for notifier in notifiers:
            kind = getattr(notifier, "kind", type(notifier).__name__)
            try:
                sent = notifier.notify(notice)
            except Exception as exc:
                sent = False
                log_event(
                    _log,
                    "notification raised",
                    level=logging.ERROR,
                    notifier=kind,
                    notify_event=notice.event,
                    policy=notice.policy,
                    error_type=type(exc).__name__,
                )
            if not sent:
                failed.append(f"{kind} notification of {notice.event} ({notice.policy}) not sent")
    return failed


def notify_from_command(
    policy: Policy, env: Mapping[str, str], notices: Sequence[Notice], *, timeout: float = 5.0
) -> list[str]:
    """Send `notices` of a command run by hand to `policy`'s notifiers; problems as lines, never raised.

    A notification variable unset in the person's shell only means nobody hears of it: said, not failed.
    """
    if not notices or not policy.spec.notifications:
        return []
    try:
        notifiers = notifiers_for(policy, env, timeout=timeout)
    except GitbotError as exc:
        log_event(_log, "notifications not sent", level=logging.WARNING, policy=policy.name, problem=exc.one_line())
        return [f"notifications not sent: {process_masker().mask(exc.one_line())}"]
    return send_notices(notifiers, notices)


def notifiers_for(
    policy: Policy,
    env: Mapping[str, str],
    *,
    timeout: float = 5.0,
    on_request: RequestRecorder | None = None,
    masker: SecretMasker | None = None,
) -> list[Notifier]:
    """One notifier per entry of `policy`'s notifications; ConfigError when a named variable is unset."""
    out: list[Notifier] = []
    for index, notification in enumerate(policy.spec.notifications):
        if notification.slack is not None:
            url = _url(policy, env, notification.slack.webhook_env, f"/spec/notifications/{index}/slack/webhookEnv")
            out.append(SlackNotifier(url, timeout=timeout, policy=policy.name, on_request=on_request, masker=masker))
        elif notification.webhook is not None:
            url = _url(policy, env, notification.webhook.url_env, f"/spec/notifications/{index}/webhook/urlEnv")
            out.append(WebhookNotifier(url, timeout=timeout, policy=policy.name, on_request=on_request, masker=masker))
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
