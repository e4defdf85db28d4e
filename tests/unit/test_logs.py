"""Structured logs: JSON off a terminal, key=value on one, and secrets masked on every path into a log."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from gitbot.config import Policy, load_policy
from gitbot.errors import AuthError
from gitbot.logs import (
    SecretMasker,
    configure_logging,
    log_event,
    mask_credentials,
    masked_output,
    secret_env_names,
    secrets_for,
)

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "ghp_S3cretT0kenValue+/with=odd&chars"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def capture(masker: SecretMasker, *, json_lines: bool | None, stream: io.StringIO | None = None) -> io.StringIO:
    out = stream if stream is not None else io.StringIO()
    configure_logging(masker, json=json_lines, level=logging.DEBUG, stream=out)
    return out


def fail_with_token() -> None:
    try:
        raise ConnectionError(f"could not reach https://x-access-token:{TOKEN}@git.example/repo.git")
    except ConnectionError as exc:
        raise AuthError(f"git refused token {TOKEN}", where=f"https://{TOKEN}@git.example") from exc


@pytest.mark.usefixtures("restore_root")
@pytest.mark.parametrize("json_lines", [True, False])
def test_a_known_token_never_reaches_the_output(json_lines: bool) -> None:
    out = capture(SecretMasker({TOKEN}), json_lines=json_lines)
    log = logging.getLogger("gitbot.test")
    log.info("pushing with %s", TOKEN)
    log.warning(f"formatted into the message {TOKEN}")
    log_event(log, "cycle", policy="p", error=f"token {TOKEN} refused", nested={"k": [TOKEN, {"deep": TOKEN}]})
    log.info("plain extra", extra={"authorization": f"Bearer {TOKEN}"})
    try:
        fail_with_token()
    except AuthError:
        log.exception("cycle failed")
    log.error("with stack", stack_info=True, extra={"url": f"https://hooks.example/{TOKEN}"})
    # A library's own logger goes through the same handler.
    logging.getLogger("urllib3.connectionpool").debug("GET /?token=%s", "ghp_S3cretT0kenValue%2B%2Fwith%3Dodd%26chars")
    text = out.getvalue()
    assert TOKEN not in text
    assert "ghp_S3cretT0kenValue" not in text
    assert text.count("***") >= 10
    assert "Traceback" in text and "AuthError" in text and "ConnectionError" in text


@pytest.mark.usefixtures("restore_root")
def test_json_lines_off_a_terminal() -> None:
    out = capture(SecretMasker(), json_lines=None)
    log_event(
        logging.getLogger("gitbot.service"), "cycle", policy="production", outcome="changed", changes={"rollback": 1}
    )
    logging.getLogger("gitbot.x").info("plain %d", 3, extra={"name_of": "x"})
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["event"] == "cycle"
    assert first["level"] == "info"
    assert first["logger"] == "gitbot.service"
    assert first["policy"] == "production"
    assert first["changes"] == {"rollback": 1}
    assert first["ts"].endswith("Z")
    assert second["event"] == "plain 3"
    assert second["name_of"] == "x"


@pytest.mark.usefixtures("restore_root")
def test_key_value_lines_on_a_terminal() -> None:
    out = capture(SecretMasker({TOKEN}), json_lines=None, stream=Terminal())
    log_event(logging.getLogger("gitbot.service"), "cycle", policy="production", outcome="held", error="a b", n=2)
    line = out.getvalue().strip()
    assert not line.startswith("{")
    assert " INFO    gitbot.service cycle policy=production outcome=held " in line
    assert 'error="a b"' in line
    assert line.endswith("n=2")


@pytest.mark.usefixtures("restore_root")
def test_configuring_twice_keeps_one_handler() -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    configure_logging(SecretMasker(), stream=io.StringIO())
    second = io.StringIO()
    configure_logging(SecretMasker(), stream=second)
    assert len(root.handlers) == before + 1
    logging.getLogger("gitbot").warning("once")
    assert second.getvalue().count("once") == 1


def test_mask_leaves_other_text_alone() -> None:
    masker = SecretMasker({"abc123", ""})
    assert masker.mask("x abc123 y abc123") == "x *** y ***"
    assert masker.mask("nothing secret") == "nothing secret"
    assert SecretMasker().mask("abc123") == "abc123"
    masker.add("longer-abc123-token")
    assert masker.mask("longer-abc123-token") == "***"


# A value no masker knows: only its place or its shape can give it away.
CANARY = "Zq7canaryS3cret0x5f"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJnaXRib3QifQ.c2lnbmF0dXJlLXZhbHVl"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"refused Bearer {CANARY}", "refused Bearer ***"),
        (f"bad header: Authorization: Basic {CANARY}==", "bad header: Authorization: ***"),
        (f'{{"authorization": "token {CANARY}"}}', '{"authorization": "***"}'),
        (f"Authorization: token {CANARY}", "Authorization: ***"),
        (f"got basic {CANARY} from proxy", "got basic *** from proxy"),
        (f"GET /api?query=up&access_token={CANARY}&x=1", "GET /api?query=up&access_token=***&x=1"),
        (f"https://git.example/r.git?token={CANARY}#frag", "https://git.example/r.git?token=***#frag"),
        (f"https://git.example/r.git#private_token={CANARY}", "https://git.example/r.git#private_token=***"),
        (f"password={CANARY}; api_key={CANARY}", "password=***; api_key=***"),
        (f"?X-Amz-Signature={CANARY}&gitlab_private_token={CANARY}", "?X-Amz-Signature=***&gitlab_private_token=***"),
        (
            f"clone https://x-access-token:{CANARY}@git.example/r.git",
            "clone https://x-access-token:***@git.example/r.git",
        ),
        (f"clone https://{CANARY}@git.example/r.git", "clone https://***@git.example/r.git"),
        (f"ssh://git:{CANARY}@host/r.git", "ssh://git:***@host/r.git"),
        ("token ghp_" + "a1B2" * 9 + " refused", "token *** refused"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop in error", "*** in error"),
        ("gho_" + "Z" * 36 + ", ghu_" + "1" * 36 + ", ghs_" + "x" * 36, "***, ***, ***"),
        (f"jwt {JWT} rejected", "jwt *** rejected"),
        (f"slack xoxb-{CANARY}", "slack ***"),
        (
            f"POST https://hooks.slack.com/services/T0/B0/{CANARY} failed",
            "POST https://hooks.slack.com/services/*** failed",
        ),
    ],
)
def test_credentials_are_masked_by_their_shape(text: str, masked: str) -> None:
    assert mask_credentials(text) == masked
    assert CANARY not in SecretMasker().mask(text)


@pytest.mark.parametrize(
    "text",
    [
        "gitbot(production): podinfo-ga 0.1.1 -> 0.1.2",
        "token refused; basic auth needed",
        "ssh://git@github.com/acme/config.git and git@github.com:acme/config.git",
        "https://prometheus.example:9090/api/v1/query",
        "Gitbot-Plan-Id: 3f2a9c1b7d4e",
        "sum(rate(istio_requests_total{reporter='destination'}[5m]))",
        "a person (Other Person) reverted step abc1234",
        "success-rate pass canary=99.5 GA=99.8 threshold >= 99%; key=value tokens=3",
    ],
)
def test_shape_masking_leaves_ordinary_text_alone(text: str) -> None:
    assert mask_credentials(text) == text


def test_a_log_record_is_masked_by_shape_without_any_known_secret() -> None:
    stream = io.StringIO()
    configure_logging(SecretMasker(), json=True, stream=stream)
    log_event(logging.getLogger("gitbot.test"), "cycle-failed", error=f"HTTP 401: refused Bearer {CANARY}")
    assert CANARY not in stream.getvalue() and "refused Bearer ***" in stream.getvalue()


def policy_with_every_secret() -> Policy:
    data: dict[str, Any] = {
        "apiVersion": "gitbot.dev/v1alpha1",
        "kind": "Policy",
        "metadata": {"name": "all"},
        "spec": {
            "git": {"url": "https://git.example/r.git", "tokenEnv": "GIT_T"},
            "delivery": {"mode": "pull-request", "github": {"repository": "a/b", "tokenEnv": "GH_T"}},
            "registries": [{"host": "r.example", "usernameEnv": "REG_U", "passwordEnv": "REG_P"}],
            "canaries": [
                {
                    "name": "c",
                    "route": "VirtualService/ns/vs",
                    "stable": {"subset": "ga"},
                    "canary": {"subset": "canary"},
                    "steps": [50, 100],
                    "analysis": {
                        "prometheus": {"url": "http://prom:9090", "tokenEnv": "PROM_T"},
                        "stableWorkload": "a",
                        "canaryWorkload": "b",
                        "checks": [{"name": "success-rate", "min": 99}],
                    },
                }
            ],
            "notifications": [{"slack": {"webhookEnv": "SLACK_U"}}, {"webhook": {"urlEnv": "HOOK_U"}}],
        },
    }
    return Policy.model_validate(data)


def test_secrets_come_from_every_variable_a_policy_names() -> None:
    policy = policy_with_every_secret()
    names = {"GIT_T", "GH_T", "REG_U", "REG_P", "PROM_T", "SLACK_U", "HOOK_U"}
    assert secret_env_names(policy) == names
    env = {name: f"value-of-{name}" for name in names} | {"HOME": "/root", "REG_P": ""}
    assert secrets_for(policy, env) == {f"value-of-{n}" for n in names - {"REG_P"}}


def test_secrets_of_the_example_production_policy() -> None:
    policy = load_policy(ROOT / "policies" / "production.yaml")
    env = {"GITBOT_GIT_TOKEN": "t1", "GITHUB_TOKEN": "t2", "SLACK_WEBHOOK_URL": "https://hooks.example/T/B/x"}
    assert secrets_for(policy, env) == set(env.values())


@pytest.mark.usefixtures("restore_root")
def test_on_a_terminal_lists_read_as_json_once_and_empty_fields_are_left_out() -> None:
    out = capture(SecretMasker(), json_lines=None, stream=Terminal())
    log_event(logging.getLogger("gitbot.service"), "service started", policies=["a", "b"], error=None, port=8080)
    line = out.getvalue().strip()
    assert line.endswith('service started policies=["a","b"] port=8080')


@pytest.mark.usefixtures("restore_root")
@pytest.mark.parametrize(("level", "shown"), [(logging.INFO, False), (logging.DEBUG, True)])
def test_the_schedulers_routine_messages_show_only_at_debug(level: int, shown: bool) -> None:
    out = io.StringIO()
    configure_logging(SecretMasker(), json=True, level=level, stream=out)
    logging.getLogger("apscheduler.executors.default").info('Job "cycle p" executed successfully')
    logging.getLogger("apscheduler.scheduler").warning('Run time of job "cycle p" was missed by 0:00:02')
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert ('Job "cycle p" executed successfully' in events) is shown
    assert 'Run time of job "cycle p" was missed by 0:00:02' in events


def test_everything_a_command_prints_is_masked_but_bytes_written_on_purpose(capsys: pytest.CaptureFixture[str]) -> None:
    masker = SecretMasker({"known-Value-42"})
    with masked_output(masker):
        click.echo(f"pushed with known-Value-42 and Bearer {CANARY}")
        click.echo(json_dump := f'{{"detail": "access_token={CANARY}"}}', err=True)
        sys.stdout.flush()
        sys.stdout.buffer.write(b"raw: known-Value-42\n")
        sys.stdout.buffer.flush()
    out, err = capsys.readouterr()
    assert out == "pushed with *** and Bearer ***\nraw: known-Value-42\n"
    assert err == '{"detail": "access_token=***"}\n' and json_dump != err.strip()
    assert not isinstance(sys.stdout, type(masker)) and "Masked" not in type(sys.stdout).__name__
