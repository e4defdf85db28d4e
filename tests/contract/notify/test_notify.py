"""Slack and generic webhook notifiers against a loopback receiver: payloads, retries, failures, secrecy."""

from __future__ import annotations

import io
import json
import logging
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import ValidationError

from gitbot.adapters.notify import SlackNotifier, WebhookNotifier, notifiers_for, send_notices
from gitbot.config import load_policy
from gitbot.domain import CheckResult, Notice, NoticeEvent
from gitbot.errors import ConfigError
from gitbot.logs import FIELDS as LOG_FIELDS
from gitbot.logs import SecretMasker, configure_logging
from tests.contract.notify.conftest import Receiver, validate_slack, validate_webhook

SECRET_PATH = "/services/T0000/B0000/Zq9SecretWebhookToken"
FIELDS = {"image": "podinfo-ga", "from": "0.1.0", "to": "0.1.2"}
AT = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def notice(event: NoticeEvent = "image-update", title: str = "podinfo-ga 0.1.0 -> 0.1.2", **more: Any) -> Notice:
    """A notice as a cycle makes one; `more` overrides any of its fields."""
    values: dict[str, Any] = {"source": "daemon", "facts": tuple(FIELDS.items()), "at": AT, "policy": "production"}
    values.update(more)
    return Notice(event, title=title, **values)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    return dict(getattr(record, LOG_FIELDS))


def problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [fields_of(r)["problem"] for r in caplog.records if r.name == "gitbot.notify"]


CHECKS = (
    CheckResult("success-rate", "fail", 92.0, 99.5, ">= 99", "below the minimum"),
    CheckResult("latency-p99", "pass", 120.0, 110.0, "<= 1.5 x GA"),
    CheckResult(
        "error-rate",
        "fail",
        8.0,
        0.5,
        "<= 1 x GA",
        sequential=True,
        effect=16.0,
        e_value=float("inf"),
        requests=(600.0, 5400.0),
        since=AT,
    ),
)
ROLLBACK = notice(
    "rollback",
    "podinfo canary 10% -> 0%: committed to main",
    name="podinfo",
    detail="analysis failed at 10%: roll back to 0%",
    facts=(("Weight", "10% → 0%"), ("Verdict", "fail: success-rate failed"), ("Commit", "0123456789ab")),
    checks=CHECKS,
    verdict="fail",
    delivery="committed",
    ref="0123456789abcdef0123456789abcdef01234567",
    link="https://github.com/acme/cluster-config/commit/0123456789abcdef0123456789abcdef01234567",
)


def test_slack_payload_is_block_kit_header_section_fields_and_context(receiver: Receiver) -> None:
    assert SlackNotifier(receiver.base + SECRET_PATH, policy="production").notify(ROLLBACK)
    [post] = receiver.posts
    assert post.path == SECRET_PATH
    assert post.content_type == "application/json"
    body = post.body
    validate_slack(body)
    assert body["text"] == "Rollback: podinfo canary 10% -> 0%: committed to main"
    header, section, fields, context = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "Rollback: podinfo", "emoji": True}}
    assert section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"] == (
        ":rewind: *podinfo canary 10% -&gt; 0%: committed to main*\n"
        "analysis failed at 10%: roll back to 0%\n"
        f"<{ROLLBACK.link}|commit 0123456789ab>"
    )
    assert [f["text"] for f in fields["fields"]] == [
        "*Weight*\n10% → 0%",
        "*Verdict*\nfail: success-rate failed",
        "*Commit*\n0123456789ab",
    ]
    assert context == {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": "gitbot · rollback · policy production · from daemon · 2026-03-01 12:30 UTC"}
        ],
    }


def test_a_pull_request_is_linked_as_one(receiver: Receiver) -> None:
    url = "http://127.0.0.1:9/acme/cluster-config/pull/7"
    opened = notice(
        "canary-step", "Pull request opened: podinfo canary 10% -> 60%", delivery="opened", ref=url, link=url
    )
    SlackNotifier(receiver.base + "/slack").notify(opened)
    text = receiver.posts[0].body["blocks"][1]["text"]["text"]
    assert text.endswith(f"<{url}|pull request>")


def test_slack_limits_are_respected(receiver: Receiver) -> None:
    many = tuple((f"k{i}", "v" * 2500) for i in range(14))
    SlackNotifier(receiver.base + SECRET_PATH).notify(notice("rollback", "x" * 5000, name="n" * 300, facts=many))
    body = receiver.posts[0].body
    validate_slack(body)
    assert len(body["blocks"][0]["text"]["text"]) == 150
    assert len(body["blocks"][1]["text"]["text"]) <= 3000
    assert len(body["blocks"][2]["fields"]) == 10
    assert all(len(f["text"]) <= 2000 for f in body["blocks"][2]["fields"])


def test_generic_webhook_payload_follows_the_schema(receiver: Receiver) -> None:
    WebhookNotifier(receiver.base + "/hook", policy="staging").notify(ROLLBACK)
    [post] = receiver.posts
    assert post.content_type == "application/json"
    validate_webhook(post.body)
    body = post.body
    assert (body["schemaVersion"], body["event"], body["source"], body["policy"]) == (
        1,
        "rollback",
        "daemon",
        "production",
    )
    assert (body["delivery"], body["ref"], body["link"]) == ("committed", ROLLBACK.ref, ROLLBACK.link)
    assert body["facts"][0] == {"label": "Weight", "value": "10% → 0%"}
    assert body["fields"]["Verdict"] == "fail: success-rate failed"
    assert body["time"] == "2026-03-01T12:30:00+00:00"
    # An infinite e-value is no JSON number: it goes as null, as no data does.
    assert body["checks"][2] == {
        "name": "error-rate",
        "verdict": "fail",
        "canary": 8.0,
        "stable": 0.5,
        "threshold": "<= 1 x GA",
        "detail": "",
        "sequential": True,
        "effect": 16.0,
        "eValue": None,
        "requests": {"canary": 600.0, "stable": 5400.0},
        "since": "2026-03-01T12:30:00+00:00",
    }


def test_a_document_off_the_schema_is_refused_by_the_validator(receiver: Receiver) -> None:
    WebhookNotifier(receiver.base + "/hook").notify(ROLLBACK)
    body = dict(receiver.posts[0].body)
    for broken in (
        {**body, "event": "delivered"},
        {**body, "secret": "x"},
        {k: v for k, v in body.items() if k != "text"},
    ):
        with pytest.raises(ValidationError):
            validate_webhook(broken)


def test_a_notice_is_masked_before_it_is_posted(receiver: Receiver) -> None:
    leaky = notice(
        "cycle-failed",
        "boom Zq9SecretValue",
        detail="Authorization: Bearer abc.def.ghi",
        facts=(("Error", "Zq9SecretValue"),),
    )
    failed = send_notices(
        [SlackNotifier(receiver.base + "/slack"), WebhookNotifier(receiver.base + "/hook")],
        [leaky],
        SecretMasker({"Zq9SecretValue"}),
    )
    assert failed == []
    assert len(receiver.posts) == 2
    for post in receiver.posts:
        text = json.dumps(post.body)
        assert "Zq9SecretValue" not in text and "abc.def.ghi" not in text
        assert "***" in text


class Raising:
    kind = "raising"

    def notify(self, notice: Notice) -> bool:
        raise RuntimeError(f"broke on {notice.event}")


def test_send_notices_never_raises_and_says_what_was_not_sent(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.statuses[:] = [404]
    with caplog.at_level(logging.WARNING, logger="gitbot"):
        failed = send_notices(
            [
                Raising(),
                WebhookNotifier(receiver.base + "/hook", retry_delay=0.01),
                SlackNotifier(receiver.base + "/slack"),
            ],
            [notice()],
        )
    assert failed == [
        "raising notification of image-update (production) not sent",
        "webhook notification of image-update (production) not sent",
    ]
    assert [p.path for p in receiver.posts] == ["/hook", "/slack"]


def test_a_5xx_is_retried_once(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.statuses[:] = [500]
    requests: list[tuple[str, str]] = []
    with caplog.at_level(logging.DEBUG):
        WebhookNotifier(receiver.base + "/hook", retry_delay=0.01, on_request=lambda *r: requests.append(r)).notify(
            notice("cycle-failed", "boom", facts=())
        )
    assert len(receiver.posts) == 2
    assert requests == [("webhook", "5xx"), ("webhook", "ok")]
    assert receiver.posts[0].body == receiver.posts[1].body
    assert not [r for r in caplog.records if r.name.startswith("gitbot") and r.levelno >= logging.WARNING]


def test_two_5xx_are_logged_not_raised(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.statuses[:] = [502, 503, 500]
    with caplog.at_level(logging.DEBUG):
        SlackNotifier(receiver.base + SECRET_PATH, retry_delay=0.01).notify(notice("cycle-failed", "boom", facts=()))
    assert len(receiver.posts) == 2
    [record] = [r for r in caplog.records if r.name == "gitbot.notify"]
    assert record.levelno == logging.WARNING
    assert fields_of(record)["problem"] == "HTTP 503"
    assert fields_of(record)["notifier"] == "slack"


def test_a_4xx_is_not_retried(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.statuses[:] = [404]
    with caplog.at_level(logging.WARNING, logger="gitbot"):
        SlackNotifier(receiver.base + SECRET_PATH, retry_delay=0.01).notify(notice("rollback", "r", facts=()))
    assert len(receiver.posts) == 1
    assert problems(caplog) == ["HTTP 404"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_receiver_down_is_logged_not_raised_and_the_url_stays_secret(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{closed_port()}{SECRET_PATH}"
    requests: list[tuple[str, str]] = []
    notifier = SlackNotifier(url, retry_delay=0.01, on_request=lambda *r: requests.append(r))
    with caplog.at_level(logging.DEBUG):
        notifier.notify(notice("cycle-failed", "boom", facts=()))
    assert requests == [("slack", "transport-error")] * 2
    assert problems(caplog) == ["ConnectError"]
    assert "Zq9SecretWebhookToken" not in caplog.text
    assert "Zq9SecretWebhookToken" not in repr(notifier)


def test_a_slow_receiver_times_out(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.delay = 1.0
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="gitbot"):
        WebhookNotifier(receiver.base + "/hook", timeout=0.1, retry_delay=0.01).notify(
            notice("rollback", "r", facts=())
        )
    assert time.monotonic() - started < 0.9
    assert problems(caplog) == ["ReadTimeout"]


def test_through_configured_logging_no_log_line_holds_the_url(receiver: Receiver) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    url = receiver.base + SECRET_PATH
    out = io.StringIO()
    try:
        configure_logging(SecretMasker({url}), json=True, level=logging.DEBUG, stream=out)
        receiver.statuses[:] = [500, 500]
        SlackNotifier(url, retry_delay=0.01).notify(notice("cycle-failed", "boom", facts=()))
        logging.getLogger("gitbot.cycle").error("posting to %s failed", url)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    text = out.getvalue()
    assert "notification failed" in text
    assert "posting to *** failed" in text
    assert "Zq9SecretWebhookToken" not in text


POLICY = """\
apiVersion: gitbot.dev/v1alpha1
kind: Policy
metadata: {name: notifying}
spec:
  git: {url: "https://git.example/r.git"}
  notifications:
    - slack: {webhookEnv: TEST_SLACK_URL}
    - webhook: {urlEnv: TEST_HOOK_URL}
"""


def test_notifiers_for_a_policy_post_to_their_urls(receiver: Receiver, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    policy = load_policy(path)
    env = {"TEST_SLACK_URL": receiver.base + "/slack", "TEST_HOOK_URL": receiver.base + "/hook"}
    slack, hook = notifiers_for(policy, env)
    assert isinstance(slack, SlackNotifier)
    assert isinstance(hook, WebhookNotifier)
    for notifier in (slack, hook):
        notifier.notify(notice("canary-inconclusive", "podinfo analysis inconclusive for 20m", policy="notifying"))
    assert [p.path for p in receiver.posts] == ["/slack", "/hook"]
    assert receiver.posts[1].body["policy"] == "notifying"


def test_notifiers_for_needs_the_variables_set_to_urls(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    policy = load_policy(path)
    with pytest.raises(ConfigError) as unset:
        notifiers_for(policy, {"TEST_SLACK_URL": "https://hooks.example/x"})
    assert unset.value.one_line() == (
        f"{path}:8: spec.notifications[1].webhook.urlEnv: environment variable TEST_HOOK_URL "
        "(named by spec.notifications[1].webhook.urlEnv) is not set or empty"
    )
    with pytest.raises(ConfigError) as bad:
        notifiers_for(policy, {"TEST_SLACK_URL": "not-a-url-Zq9Secret", "TEST_HOOK_URL": "https://h.example/"})
    assert f"{path}:7" in bad.value.one_line()
    assert "Zq9Secret" not in bad.value.one_line()


def test_a_url_read_from_a_secret_file_with_a_trailing_newline_still_posts(receiver: Receiver, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    env = {"TEST_SLACK_URL": receiver.base + "/slack\n", "TEST_HOOK_URL": " " + receiver.base + "/hook\n"}
    for notifier in notifiers_for(load_policy(path), env):
        notifier.notify(notice())
    assert [p.path for p in receiver.posts] == ["/slack", "/hook"]


def test_a_url_httpx_cannot_use_is_a_config_error_at_start_without_its_value(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    env = {"TEST_SLACK_URL": "https://hooks.example/ok", "TEST_HOOK_URL": "https://hooks.example/a\nZq9Secret"}
    with pytest.raises(ConfigError) as bad:
        notifiers_for(load_policy(path), env)
    assert f"{path}:8" in bad.value.one_line()
    assert "Zq9Secret" not in bad.value.one_line()
    with pytest.raises(ConfigError) as direct:
        WebhookNotifier("https://hooks.example/a\tZq9Secret")
    assert "Zq9Secret" not in direct.value.one_line()
