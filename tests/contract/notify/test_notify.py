"""Slack and generic webhook notifiers against a loopback receiver: payloads, retries, failures, secrecy."""

from __future__ import annotations

import io
import logging
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from gitbot.adapters.notify import SlackNotifier, WebhookNotifier, notifiers_for
from gitbot.config import load_policy
from gitbot.errors import ConfigError
from gitbot.logs import FIELDS as LOG_FIELDS
from gitbot.logs import SecretMasker, configure_logging
from tests.contract.notify.conftest import Receiver

SECRET_PATH = "/services/T0000/B0000/Zq9SecretWebhookToken"
FIELDS = {"image": "podinfo-ga", "from": "0.1.0", "to": "0.1.2"}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    return dict(getattr(record, LOG_FIELDS))


def problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [fields_of(r)["problem"] for r in caplog.records if r.name == "gitbot.notify"]


def test_slack_payload_shape(receiver: Receiver) -> None:
    SlackNotifier(receiver.base + SECRET_PATH, policy="production").notify(
        "change-delivered", "podinfo-ga 0.1.0 -> 0.1.2", FIELDS
    )
    [post] = receiver.posts
    assert post.path == SECRET_PATH
    assert post.content_type == "application/json"
    body = post.body
    assert "podinfo-ga 0.1.0 -> 0.1.2" in body["text"]
    section, fields, context = body["blocks"]
    assert section["type"] == "section"
    assert section["text"]["type"] == "mrkdwn"
    assert "podinfo-ga 0.1.0 -> 0.1.2" in section["text"]["text"]
    assert [f["text"] for f in fields["fields"]] == ["*image*\npodinfo-ga", "*from*\n0.1.0", "*to*\n0.1.2"]
    assert all(f["type"] == "mrkdwn" for f in fields["fields"])
    assert context["type"] == "context"
    assert "change-delivered" in context["elements"][0]["text"]
    assert "production" in context["elements"][0]["text"]


def test_slack_limits_are_respected(receiver: Receiver) -> None:
    many = {f"k{i}": "v" * 2500 for i in range(14)}
    SlackNotifier(receiver.base + SECRET_PATH).notify("rollback", "x" * 5000, many)
    body = receiver.posts[0].body
    assert len(body["blocks"][0]["text"]["text"]) <= 3000
    assert len(body["blocks"][1]["fields"]) == 10
    assert all(len(f["text"]) <= 2000 for f in body["blocks"][1]["fields"])


def test_generic_webhook_payload_shape(receiver: Receiver) -> None:
    WebhookNotifier(receiver.base + "/hook", policy="staging").notify("rollback", "podinfo rolled back", FIELDS)
    [post] = receiver.posts
    assert post.content_type == "application/json"
    assert post.body == {"event": "rollback", "text": "podinfo rolled back", "fields": FIELDS, "policy": "staging"}


def test_a_5xx_is_retried_once(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.statuses[:] = [500]
    requests: list[tuple[str, str]] = []
    with caplog.at_level(logging.DEBUG):
        WebhookNotifier(receiver.base + "/hook", retry_delay=0.01, on_request=lambda *r: requests.append(r)).notify(
            "cycle-failed", "boom", {}
        )
    assert len(receiver.posts) == 2
    assert requests == [("webhook", "5xx"), ("webhook", "ok")]
    assert receiver.posts[0].body == receiver.posts[1].body
    assert not [r for r in caplog.records if r.name.startswith("gitbot") and r.levelno >= logging.WARNING]


def test_two_5xx_are_logged_not_raised(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.statuses[:] = [502, 503, 500]
    with caplog.at_level(logging.DEBUG):
        SlackNotifier(receiver.base + SECRET_PATH, retry_delay=0.01).notify("cycle-failed", "boom", {})
    assert len(receiver.posts) == 2
    [record] = [r for r in caplog.records if r.name == "gitbot.notify"]
    assert record.levelno == logging.WARNING
    assert fields_of(record)["problem"] == "HTTP 503"
    assert fields_of(record)["notifier"] == "slack"


def test_a_4xx_is_not_retried(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.statuses[:] = [404]
    with caplog.at_level(logging.WARNING, logger="gitbot"):
        SlackNotifier(receiver.base + SECRET_PATH, retry_delay=0.01).notify("rollback", "r", {})
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
        notifier.notify("cycle-failed", "boom", {})
    assert requests == [("slack", "transport-error")] * 2
    assert problems(caplog) == ["ConnectError"]
    assert "Zq9SecretWebhookToken" not in caplog.text
    assert "Zq9SecretWebhookToken" not in repr(notifier)


def test_a_slow_receiver_times_out(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.delay = 1.0
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="gitbot"):
        WebhookNotifier(receiver.base + "/hook", timeout=0.1, retry_delay=0.01).notify("rollback", "r", {})
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
        SlackNotifier(url, retry_delay=0.01).notify("cycle-failed", "boom", {})
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
        notifier.notify("inconclusive", "podinfo analysis inconclusive 3 times", {"canary": "podinfo"})
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
        notifier.notify("change-delivered", "podinfo-ga 0.1.0 -> 0.1.2", FIELDS)
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
