"""A loopback HTTP receiver that records JSON posts and answers with scripted status codes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator


@dataclass
class Post:
    path: str
    content_type: str
    body: Any


@dataclass
class Receiver:
    """Records every POST; answers with `statuses` in turn (200 once they run out), after `delay` seconds."""

    base: str
    posts: list[Post] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.posts.clear()
            self.statuses.clear()
            self.delay = 0.0

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else 200


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout test) leaves a broken pipe here; that is the expected outcome.
        return


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        receiver = self.server.receiver
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        with receiver.lock:
            receiver.posts.append(Post(self.path, self.headers.get("Content-Type", ""), json.loads(raw)))
        # Decide before sleeping so that a late answer cannot take a status scripted for a later test.
        status, delay = receiver.next_status(), receiver.delay
        if delay:
            time.sleep(delay)
        body = b"ok" if status < 300 else b"error"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[Receiver]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.receiver = Receiver(base=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.receiver
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def receiver(receiver_server: Receiver) -> Receiver:
    receiver_server.reset()
    return receiver_server


# What Slack documents for the blocks gitbot sends (Block Kit reference: header, section, context, and the
# text objects in them), with their limits; anything else in a payload is refused.
_TEXT: dict[str, Any] = {
    "type": "object",
    "required": ["type", "text"],
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["plain_text", "mrkdwn"]},
        "text": {"type": "string", "minLength": 1},
        "emoji": {"type": "boolean"},
        "verbatim": {"type": "boolean"},
    },
}
_MRKDWN: dict[str, Any] = {**_TEXT, "properties": {**_TEXT["properties"], "type": {"const": "mrkdwn"}}}
SLACK_BLOCK_KIT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["text", "blocks"],
    "additionalProperties": False,
    "properties": {
        "text": {"type": "string", "minLength": 1},
        "blocks": {
            "type": "array",
            "minItems": 1,
            "maxItems": 50,
            "items": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["type", "text"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "header"},
                            "block_id": {"type": "string", "maxLength": 255},
                            "text": {
                                **_TEXT,
                                "properties": {
                                    **_TEXT["properties"],
                                    "type": {"const": "plain_text"},
                                    "text": {"type": "string", "minLength": 1, "maxLength": 150},
                                },
                            },
                        },
                    },
                    {
                        "type": "object",
                        "required": ["type"],
                        "anyOf": [{"required": ["text"]}, {"required": ["fields"]}],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "section"},
                            "block_id": {"type": "string", "maxLength": 255},
                            "text": {
                                **_TEXT,
                                "properties": {
                                    **_TEXT["properties"],
                                    "text": {"type": "string", "minLength": 1, "maxLength": 3000},
                                },
                            },
                            "fields": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 10,
                                "items": {
                                    **_TEXT,
                                    "properties": {
                                        **_TEXT["properties"],
                                        "text": {"type": "string", "minLength": 1, "maxLength": 2000},
                                    },
                                },
                            },
                        },
                    },
                    {
                        "type": "object",
                        "required": ["type", "elements"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "context"},
                            "block_id": {"type": "string", "maxLength": 255},
                            "elements": {"type": "array", "minItems": 1, "maxItems": 10, "items": _MRKDWN},
                        },
                    },
                ]
            },
        },
    },
}
NOTIFICATION_SCHEMA = Path(__file__).resolve().parents[3] / "gitbot" / "schemas" / "notification.schema.json"


def validate_slack(body: Any) -> None:
    """Raise unless `body` is a Slack message of the Block Kit blocks gitbot may send, within Slack's limits."""
    Draft202012Validator(SLACK_BLOCK_KIT).validate(body)


def validate_webhook(body: Any) -> None:
    """Raise unless `body` follows gitbot's published notification schema (formats checked too)."""
    schema = json.loads(NOTIFICATION_SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(body)


def validate_post(post: Post) -> None:
    """Validate a recorded post by its receiver path: `/slack...` against Block Kit, the rest against the schema."""
    if post.path.startswith(("/slack", "/services/")):
        validate_slack(post.body)
    else:
        validate_webhook(post.body)
