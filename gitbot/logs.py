"""Structured logging and secret masking for every gitbot process.

Owns the log format (one JSON object per event when stderr is not a terminal, readable `key=value` lines on a
terminal) and the `SecretMasker`, a logging filter that replaces every known secret value with `***` in
messages, arguments, extra fields and exception text before any handler formats the record. Secret values
are collected from the environment variables a policy names; this module never logs or stores them anywhere
else. It does no other I/O and imports no network library.
"""

from __future__ import annotations

import json as jsonlib
import logging
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote

from gitbot.config import Policy

MASK = "***"
# Attributes every LogRecord has; anything else on a record came in through `extra`.
_STANDARD = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 1, "x", None, None))) | {"message", "asctime"}
# `log_event` puts its fields here so that names such as `name` or `message` cannot clash with LogRecord's.
FIELDS = "gitbot_fields"
_HANDLER_MARK = "_gitbot_handler"
_REGISTRY_PASSWORD = re.compile(r"^GITBOT_REGISTRY_\w+_PASSWORD$")

# Credentials recognised by their shape, for text that may carry one gitbot never read: a server's error
# body quoting the header it refused, a URL someone pasted a token into. Each keeps what says where the
# credential was (the scheme, the parameter name) and replaces the value. Ordered: whole tokens first.
_TOKEN = r"[A-Za-z0-9._~+/-]{8,}=*"  # noqa: S105 - a pattern, not a password
# Names of parameters that hold a secret: `access_token`, `private_token`, `api_key`, `X-Amz-Signature` ...
_SECRET_NAME = re.compile(r"(?i)(?:token|password|passwd|pwd|secret|signature|api[_-]?key|apikey|sig)$")
_SHAPES: tuple[tuple[tuple[str, ...], re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # A JSON Web Token: three base64url parts, the first a JSON object ("eyJ").
    (("eyj",), re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), MASK),
    # GitHub tokens (personal, OAuth, user-to-server, server-to-server, refresh; fine-grained).
    (("gh", "github_pat_"), re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,})"), MASK),
    # Slack tokens and the secret path of a Slack incoming webhook.
    (("xox",), re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), MASK),
    (("hooks.",), re.compile(r"(hooks\.slack\.com/services/)[^\s\"'<>]+"), rf"\1{MASK}"),
    # An Authorization header quoted whole, then a credential after its scheme anywhere.
    (
        ("authorization",),
        re.compile(r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)(?:[A-Za-z-]+\s+)?[^\s\"',;]+"),
        rf"\1{MASK}",
    ),
    (("bearer", "basic", "token"), re.compile(rf"(?i)\b(bearer|basic|token)(\s+){_TOKEN}"), rf"\1\2{MASK}"),
    # User info of a URL: a password after the user, and over HTTP(S) a user alone (a pasted token).
    (("@",), re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/?#@:\"'<>]*):[^\s/?#@\"'<>]+@"), rf"\1:{MASK}@"),
    (("@",), re.compile(r"(?i)\b(https?://)[^\s/?#@:\"'<>]+@"), rf"\1{MASK}@"),
    # Secret-named parameters in a query, fragment, form or `key=value` text.
    (
        ("token", "key", "pass", "pwd", "secret", "sig"),
        re.compile(r"\b([A-Za-z][A-Za-z0-9_.-]*)=([^&\s#\"',;)}<>]+)"),
        lambda found: f"{found.group(1)}={MASK}" if _SECRET_NAME.search(found.group(1)) else found.group(0),
    ),
)


def mask_credentials(text: str) -> str:
    """`text` with every credential recognised by its shape replaced by `***` (see `_SHAPES`).

    For text from outside (error bodies, URLs, messages): it needs no list of known secrets, so it also
    catches a token gitbot never read. `SecretMasker.mask` applies it after the known values.
    """
    if not text:
        return text
    lowered = text.lower()
    for needles, pattern, replacement in _SHAPES:
        # Each shape holds one of a few short words; most text has none of them, and looking is cheap.
        if any(needle in lowered for needle in needles):
            text = pattern.sub(replacement, text)
    return text


class SecretMasker(logging.Filter):
    """Replaces known secret values with `***` in everything a log record carries.

    Installed on a handler, it sees records from every logger (libraries included) that reach that handler.
    Values are matched literally, longest first, and also in their URL-encoded form.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Learn more secret values (empty values are ignored)."""
        for secret in secrets:
            # A value read from a file often ends with a newline that the program using it drops, so the
            # stripped form is what shows up in an error; both are masked.
            for form in {secret, secret.strip()}:
                if form:
                    self._secrets.add(form)
                    self._secrets.add(quote(form, safe=""))
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None

    def __len__(self) -> int:
        return len(self._secrets)

    def mask(self, text: str) -> str:
        """`text` with every known secret, and every credential recognised by its shape, replaced by `***`."""
        if not text:
            return text
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        return mask_credentials(text)

    def mask_value(self, value: Any) -> Any:
        """A copy of `value` (str, number, mapping, sequence or other) with secrets masked in every string."""
        if isinstance(value, str):
            return self.mask(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {self.mask(str(k)): self.mask_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.mask_value(v) for v in value]
        return self.mask(str(value))

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.mask(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            # Formatters reuse exc_text when it is set, so the traceback is rendered once, masked.
            record.exc_text = self.mask("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        for key in list(vars(record)):
            if key not in _STANDARD:
                setattr(record, key, self.mask_value(getattr(record, key)))
        return True


class MaskedStream:
    """A text stream that masks every string written to it, for stdout and stderr of a command.

    Everything else (`encoding`, `isatty`, `buffer` ...) is the wrapped stream's: bytes written to its
    `buffer` on purpose (`gitbot set --stdout` prints a file byte-exactly) pass unchanged.
    """

    def __init__(self, stream: TextIO, masker: SecretMasker) -> None:
        self._stream = stream
        self._masker = masker

    def write(self, text: str) -> int:
        if isinstance(text, str):
            text = self._masker.mask(text)
        return self._stream.write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def masked_output(masker: SecretMasker) -> Iterator[None]:
    """Within the block, whatever the process prints on stdout and stderr passes through `masker`."""
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = MaskedStream(stdout, masker)
    sys.stderr = MaskedStream(stderr, masker)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def secret_env_names(policy: Policy) -> set[str]:
    """The names of every environment variable `policy` reads a secret from."""
    spec = policy.spec
    names = {spec.git.token_env}
    if spec.delivery.github is not None:
        names.add(spec.delivery.github.token_env)
    for registry in spec.registries:
        names |= {registry.username_env, registry.password_env}
    for canary in spec.canaries:
        names.add(canary.analysis.prometheus.token_env)
    for notification in spec.notifications:
        names.add(notification.slack.webhook_env if notification.slack else None)
        names.add(notification.webhook.url_env if notification.webhook else None)
    return {name for name in names if name}


def secrets_for(policy: Policy, env: Mapping[str, str]) -> set[str]:
    """The secret values `policy` would read from `env` (unset or empty variables are left out)."""
    return {value for name in secret_env_names(policy) if (value := env.get(name, ""))}


_PROCESS_MASKER = SecretMasker()


def process_masker() -> SecretMasker:
    """The masker of this process: every secret value a command has read so far.

    Commands add to it where they read secrets (the composition root); the CLI masks its error lines and
    `--debug` tracebacks with it, and `gitbot run` installs it on the log handler.
    """
    return _PROCESS_MASKER


def remember_secrets(policy: Policy, env: Mapping[str, str]) -> None:
    """Add the secret values `policy` reads from `env` to the process masker."""
    _PROCESS_MASKER.add(*secrets_for(policy, env))


def environment_secrets(env: Mapping[str, str]) -> set[str]:
    """Secret values no policy names: registry passwords from `GITBOT_REGISTRY_<HOST>_PASSWORD`."""
    return {value for name, value in env.items() if _REGISTRY_PASSWORD.match(name) and value}


def log_event(
    logger: logging.Logger, event: str, /, level: int = logging.INFO, exc_info: bool = False, **fields: Any
) -> None:
    """Log one structured event: `event` is the message, `fields` become keys of the JSON object."""
    logger.log(level, event, exc_info=exc_info, extra={FIELDS: fields}, stacklevel=2)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key == FIELDS and isinstance(value, Mapping):
            out.update(value)
        elif key not in _STANDARD and key != FIELDS:
            out[key] = value
    return out


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _exception_text(record: logging.LogRecord) -> str | None:
    if record.exc_text:
        return record.exc_text
    if record.exc_info and record.exc_info[0] is not None:
        return "".join(traceback.format_exception(*record.exc_info)).rstrip()
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in _fields(record).items():
            payload.setdefault(key, value)
        exc = _exception_text(record)
        if exc:
            payload["exception"] = exc
        return jsonlib.dumps(payload, default=str, ensure_ascii=False, separators=(",", ":"))


_BARE = re.compile(r"^[^\s\"=]+$")


def _kv(value: Any) -> str:
    if not isinstance(value, str):
        # Lists and mappings as compact JSON, not JSON quoted again: `policies=["a","b"]`.
        return jsonlib.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    return value if _BARE.match(value) else jsonlib.dumps(value, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL logger event key=value ...` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        clock = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        parts = [clock, f"{record.levelname:<7}", record.name, record.getMessage()]
        # An empty field (no error on a cycle that worked) says nothing to a reader.
        parts += [f"{key}={_kv(value)}" for key, value in _fields(record).items() if value is not None]
        line = " ".join(parts)
        exc = _exception_text(record)
        return f"{line}\n{exc}" if exc else line


def configure_logging(
    masker: SecretMasker,
    *,
    json: bool | None = None,
    level: int | str = logging.INFO,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log record to `stream` (stderr) through `masker`, as JSON or key=value lines.

    `json=None` picks JSON unless the stream is a terminal. Calling it again replaces the handler it
    installed before, so a process has exactly one. Returns the handler.
    """
    target = stream if stream is not None else sys.stderr
    as_json = json if json is not None else not (hasattr(target, "isatty") and target.isatty())
    handler = logging.StreamHandler(target)
    handler.setFormatter(JsonFormatter() if as_json else KeyValueFormatter())
    handler.addFilter(masker)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request URL at INFO; webhook URLs are secrets and masked, but they are noise too.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    # APScheduler reports every run at INFO ("executed successfully" even after a failed cycle, which it cannot
    # see); the service's own cycle event says what happened. Its warnings (missed runs) stay.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)
    return handler
