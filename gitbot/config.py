"""Policy files (`policies/*.yaml`) -> validated, frozen settings.

Owns the user-facing policy format of `gitbot.dev/v1alpha1` and turns every mistake in it into a
ConfigError that names the file, the line and the field, and says what is expected. Secrets are referenced
by environment variable name only; this module never reads a secret's value into settings.
"""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from gitbot import routes
from gitbot.analysis import SEQUENTIAL, CheckSpec
from gitbot.cron import cron_trigger
from gitbot.errors import ConfigError, ManifestError
from gitbot.imageref import parse_image
from gitbot.manifests import MAX_FILE_SIZE
from gitbot.signatures import load_public_key
from gitbot.versioning import TagFilter, parse_filter
from gitbot.yamlio import load_with_positions

if TYPE_CHECKING:
    from gitbot.signatures import PublicKey

API_VERSION = "gitbot.dev/v1alpha1"
# The name of the one change (commit or pull request branch) that `delivery.group: all` makes of every image.
GROUP_ALL_NAME = "images"
# Prefixes of the pull request branches that hand-run rollbacks and promotions use; a cycle leaves them open.
MANUAL_PREFIXES = ("rollback-", "promote-")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_ENV = r"^[A-Za-z_][A-Za-z0-9_]*$"
# `Kind/namespace/name` of one of the route kinds gitbot knows (gitbot.routes).
CANARY_ROUTE_PATTERN = rf"^({'|'.join(kind.kind for kind in routes.KINDS)})/[a-z0-9-]*/[a-z0-9.-]+$"
TARGET_RESOURCE_PATTERN = r"^[A-Za-z]+/[a-z0-9-]*/[a-z0-9.-]+$"
PROMOTION_AFTER_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?/[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
GITHUB_REPOSITORY_PATTERN = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"


def parse_duration(value: object) -> timedelta:
    """`90s`, `5m`, `1h30m` -> timedelta; anything else, a bare number too, is an error."""
    if isinstance(value, timedelta):
        return value
    try:
        text = str(value).strip()
        if re.fullmatch(r"\d+", text) and not isinstance(value, bool):
            # `interval: 60` could mean seconds or minutes: what another tool assumed is not guessed here.
            raise ValueError(f"a duration needs a unit: write {text}s, {text}m or {text}h, got {text} without one")
        if re.fullmatch(r"\d*\.\d*", text) and text != ".":
            raise ValueError(f"a duration needs a unit and whole numbers, such as 90s, 5m or 1h30m, got {text}")
        match = _DURATION.match(text)
        if not text or match is None or not any(match.groups()):
            raise ValueError(f"expected a duration such as 30s, 5m or 1h30m, got {text!r}")
        hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
        duration = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        # `.inf` or a number of hours beyond what a timedelta holds: a mistake, not a schedule.
        raise ValueError(f"expected a duration such as 30s, 5m or 1h30m, got {value!r} (too long)") from None
    if duration <= timedelta(0):
        raise ValueError("expected a duration longer than zero")
    return duration


def env_name(value: str) -> str:
    """`value` when it is the name of an environment variable; ValueError, which never quotes it, otherwise.

    A token pasted where its variable's name belongs must not be echoed back into a terminal or a log.
    """
    if not re.fullmatch(_ENV, value):
        raise ValueError(
            "expected the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*), not a value; "
            "put the secret in that variable and name it here"
        )
    return value


# The validation context of a policy read from a file, where a duration must say its unit.
FROM_FILE = types.MappingProxyType({"from_file": True})


def _duration(value: object, info: ValidationInfo) -> timedelta:
    """A policy's duration: with a unit in a file; settings built in code may also give seconds as a number."""
    from_file = bool(info.context and info.context.get("from_file"))
    if not from_file and isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1e9:
        return timedelta(seconds=float(value))
    return parse_duration(value)


Duration = Annotated[timedelta, BeforeValidator(_duration)]

_SIZE = re.compile(r"^(\d+)\s*(?:([KMG])(i?)B?|B)?$", re.IGNORECASE)


def parse_size(value: object) -> int:
    """`1048576`, `512Ki`, `1Mi`, `1MiB`, `10MB`, `1G` -> bytes (`Ki` = 1024, `K` = 1000); at least 1."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE.match(str(value).strip())
        if match is None:
            raise ValueError(f"expected a size such as 1048576, 512Ki, 1Mi or 8MiB, got {value!r}")
        number, unit, binary = match.groups()
        base = 1024 if binary or not unit else 1000
        size = int(number) * base ** ("KMG".index(unit.upper()) + 1 if unit else 0)
    if size < 1:
        raise ValueError("expected a size of at least 1 byte")
    return size


ByteSize = Annotated[int, BeforeValidator(parse_size)]
EnvName = Annotated[str, AfterValidator(env_name)]


def parse_notify_after(value: object, info: ValidationInfo) -> timedelta | int:
    """`notifyAfterInconclusive`: a duration (`30m`), or the older whole number of cycles (kept as an int)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"expected a duration such as 30m (or a number of cycles >= 1), got {value}")
        return value
    return _duration(value, info)


NotifyAfter = Annotated[timedelta | int, BeforeValidator(parse_notify_after)]


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, alias_generator=to_camel, strict=False
    )


class AuthorSettings(_Model):
    name: str = "gitbot"
    email: str = "gitbot@users.noreply.github.com"


def no_secret_in_url(url: str) -> str:
    """`url` unchanged; ValueError, which never quotes the URL, when any part of it can carry a credential.

    Any user info with a colon, and over HTTP(S) any user info at all: `https://<token>@host/` is how a
    token is often pasted. An SSH user (`ssh://git@host/...`) is not a secret. No query or fragment either
    (`?access_token=...`): the URLs of a policy are base URLs that need neither, and git would keep one in
    its config and print it in its errors.
    """
    part = url_credential_part(url)
    if part:
        raise ValueError(
            f"the URL must not contain a password or token (it has {part}); name an environment variable in tokenEnv"
        )
    return url


def url_credential_part(url: str) -> str | None:
    """Which part of `url` could carry a credential (user info, a query, a fragment), or None."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if re.match(r"^[a-z0-9+.-]+://[^/@]*:[^/@]*@", url, re.IGNORECASE):
        return "a password in its user info"
    if scheme.split("+")[-1] in ("http", "https") and re.match(r"^[a-z0-9+.-]+://[^/@]+@", url, re.IGNORECASE):
        return "user info"
    # Only where a query can be one: a URL with a scheme, or scp-like `user@host:path`.
    if scheme or re.match(r"^[^/:@]+@[^/:]+:", url):
        if "?" in url:
            return "a query"
        if "#" in url:
            return "a fragment"
    return None


def http_url(url: str) -> str:
    """`url` when it starts with http:// or https://; ValueError, which never quotes it, otherwise."""
    if not re.match(r"^https?://", url):
        raise ValueError("expected an http:// or https:// URL")
    return url


NoSecretUrl = Annotated[str, AfterValidator(no_secret_in_url)]


class GitSettings(_Model):
    url: NoSecretUrl
    branch: str = "main"
    paths: tuple[str, ...] = (".",)
    token_env: EnvName | None = None
    username: str = "x-access-token"
    ssh_key_file: str | None = None
    author: AuthorSettings = AuthorSettings()
    max_push_attempts: int = Field(default=3, ge=1, le=10)
    # A manifest larger than this is not read: it is skipped and reported as a problem file.
    max_file_size: ByteSize = MAX_FILE_SIZE

    @model_validator(mode="after")
    def _paths_inside_repository(self) -> GitSettings:
        for path in self.paths:
            if path.startswith("/") or ".." in Path(path).parts:
                raise ValueError(f"paths must stay inside the repository, got {path!r}")
        return self


class GitHubSettings(_Model):
    repository: str = Field(pattern=GITHUB_REPOSITORY_PATTERN)
    token_env: EnvName = "GITHUB_TOKEN"  # noqa: S105 - the name of a variable, not its value
    api_url: NoSecretUrl = "https://api.github.com"
    labels: tuple[str, ...] = ()


class DeliverySettings(_Model):
    mode: Literal["commit", "pull-request"] = "commit"
    github: GitHubSettings | None = None
    group: Literal["per-image", "all"] = "per-image"
    # How a cycle delivers a failing canary's rollback in pull-request mode: pushed to the branch at once
    # (commit, the default: a safety action does not wait for a review) or proposed as a pull request.
    rollback: Literal["commit", "pull-request"] = "commit"

    @model_validator(mode="after")
    def _github_for_pulls(self) -> DeliverySettings:
        if self.mode == "pull-request" and self.github is None:
            raise ValueError("mode pull-request needs a github section (repository, tokenEnv)")
        return self

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels each of the bot's change requests carries, from the policy's forge section."""
        return self.github.labels if self.github is not None else ()


class ScheduleSettings(_Model):
    interval: Duration | None = None
    cron: str | None = None
    jitter: Duration | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ScheduleSettings:
        if (self.interval is None) == (self.cron is None):
            raise ValueError("give exactly one of interval or cron")
        return self

    @field_validator("cron")
    @classmethod
    def _cron(cls, cron: str | None) -> str | None:
        if cron is not None:
            # The scheduler's own parser, so `gitbot validate` accepts exactly what the daemon runs.
            cron_trigger(cron)
        return cron


class TargetSettings(_Model):
    resource: str = Field(pattern=TARGET_RESOURCE_PATTERN)
    container: str | None = None


class PromotionSettings(_Model):
    """Where an image's tags must have run first: `after: <policy>/<image>`, for at least `soak`."""

    after: str = Field(pattern=PROMOTION_AFTER_PATTERN)
    # No soak: a tag that landed there and was not rolled back is enough.
    soak: Duration | None = None

    @property
    def policy(self) -> str:
        return self.after.split("/", 1)[0]

    @property
    def image(self) -> str:
        return self.after.split("/", 1)[1]


class CosignSettings(_Model):
    """A cosign public key (PEM, ECDSA P-256), from a file or an environment variable; exactly one."""

    public_key_file: str | None = Field(default=None, min_length=1)
    public_key_env: EnvName | None = None

    @model_validator(mode="after")
    def _one_key(self) -> CosignSettings:
        if (self.public_key_file is None) == (self.public_key_env is None):
            raise ValueError("give exactly one of publicKeyFile and publicKeyEnv")
        return self


class VerifySettings(_Model):
    cosign: CosignSettings


class ImageSettings(_Model):
    name: str = Field(pattern=_NAME)
    repository: str = Field(min_length=1)
    filter: str = "*"
    allow_prerelease: bool = False
    extract: str | None = None
    order: Literal["semver", "numerical", "alphabetical"] = "semver"
    targets: tuple[TargetSettings, ...] = ()
    promotion: PromotionSettings | None = None
    # A tag becomes a candidate only once its image was created this long ago (the config's `created`).
    min_age: Duration | None = None
    # `pin`: write `repository:tag@sha256:...`, and pin again when the tag's manifest changes.
    digest: Literal["pin"] | None = None
    verify: VerifySettings | None = None


class RegistrySettings(_Model):
    host: str
    insecure: bool = False
    username_env: EnvName | None = None
    password_env: EnvName | None = None

    @field_validator("host")
    @classmethod
    def _bare_host(cls, host: str) -> str:
        # A host is looked up as written; user info or a query in it would be a credential kept in settings.
        if not host or any(ch in host for ch in "@?# \t\n"):
            raise ValueError(
                "expected a registry host with an optional port (registry.acme.example:5000), without user "
                "info, query or spaces; name credentials in usernameEnv and passwordEnv"
            )
        return host

    @model_validator(mode="after")
    def _both(self) -> RegistrySettings:
        # One without the other would be dropped silently and the registry asked anonymously.
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("give both usernameEnv and passwordEnv, or neither")
        return self


class RegistryLimits(_Model):
    """Bounds on what one registry answer may cost: bytes, tags per image and time per request."""

    max_response_size: ByteSize = 8 * 1024 * 1024
    max_tags: int = Field(default=50_000, ge=1)
    request_timeout: Duration = timedelta(seconds=30)
    # Per registry host: requests in flight at once, and requests a second on average (bursts of `concurrency`).
    concurrency: int = Field(default=10, ge=1, le=100)
    requests_per_second: float = Field(default=10.0, gt=0)


# The thresholds each check judged against thresholds takes, by their policy names.
_THRESHOLDS = ("min", "max", "maxRatio", "maxDrop")
_TAKES: dict[str, tuple[str, ...]] = {
    "success-rate": ("maxDrop", "min"),
    "latency-p99": ("max", "maxRatio"),
    "custom": ("max", "min"),
}


class CheckSettings(_Model):
    name: Literal["success-rate", "latency-p99", "custom", "error-rate", "latency"]
    min: float | None = None
    max: float | None = None
    max_ratio: float | None = Field(default=None, gt=0)
    max_drop: float | None = Field(default=None, ge=0)
    query: str | None = None
    label: str | None = None
    # Sequential checks (error-rate, latency): an anytime-valid test against GA since the step landed.
    test: Literal["threshold", "sequential"] | None = None
    alpha: float | None = Field(default=None, gt=0, lt=1)
    margin: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _thresholds(self) -> CheckSettings:
        if self.name == "custom" and not (self.query and self.query.strip()):
            raise ValueError("a custom check needs a query")
        if self.name != "custom" and (self.query or self.label):
            raise ValueError(f"{self.name} is built in and takes no {'query' if self.query else 'label'}")
        given = {
            key: value
            for key, value in zip(_THRESHOLDS, (self.min, self.max, self.max_ratio, self.max_drop), strict=True)
            if value is not None
        }
        if self.name in SEQUENTIAL or self.test is not None or self.alpha is not None or self.margin is not None:
            self._sequential(given)
            return self
        if not given:
            raise ValueError("give at least one threshold: min, max, maxRatio or maxDrop")
        takes = _TAKES[self.name]
        extra = sorted(set(given) - set(takes))
        if extra:
            raise ValueError(f"check {self.name!r} does not take {', '.join(extra)}; it takes: {', '.join(takes)}")
        for key, value in given.items():
            if not math.isfinite(value):
                raise ValueError(f"check {self.name!r}: {key} must be a finite number")
        return self

    def _sequential(self, given: Mapping[str, float]) -> None:
        """A sequential check takes alpha and margin, and only those; a check judged on thresholds takes neither."""
        if self.name not in SEQUENTIAL:
            raise ValueError(
                f"check {self.name!r} is judged against thresholds and takes no test, alpha or margin; "
                f"the sequential checks are {' and '.join(sorted(SEQUENTIAL))}"
            )
        if self.test == "threshold":
            raise ValueError(
                f"check {self.name!r} is a sequential test; for a fixed threshold use latency-p99 or success-rate"
            )
        if given:
            raise ValueError(f"check {self.name!r} takes alpha and margin, not {', '.join(given)}")

    def spec(self) -> CheckSpec:
        """The check as the analysis runs it."""
        return CheckSpec(
            self.name,
            self.min,
            self.max,
            self.max_ratio,
            self.max_drop,
            self.query,
            self.label,
            test=self.test,
            alpha=self.alpha,
            margin=self.margin,
        )


class PrometheusSettings(_Model):
    url: Annotated[str, AfterValidator(http_url), AfterValidator(no_secret_in_url)]
    token_env: EnvName | None = None


class AnalysisSettings(_Model):
    prometheus: PrometheusSettings
    window: Duration = timedelta(minutes=5)
    min_requests: int = Field(default=100, ge=0)
    namespace: str | None = None
    stable_workload: str
    canary_workload: str
    checks: tuple[CheckSettings, ...] = Field(min_length=1)
    notify_after_inconclusive: NotifyAfter = timedelta(minutes=15)

    @field_validator("namespace", "stable_workload", "canary_workload")
    @classmethod
    def _label_value(cls, value: str | None) -> str | None:
        # These go into PromQL label matchers, where a quote, backslash or brace would change the query.
        if value is not None and (not value or any(ch in value for ch in '"\\\n{}')):
            raise ValueError(
                f"expected a workload or namespace name without quotes, backslashes or braces, got {value!r}"
            )
        return value

    @field_validator("window")
    @classmethod
    def _whole_seconds(cls, window: timedelta) -> timedelta:
        seconds = window.total_seconds()
        if seconds < 1 or seconds != int(seconds):
            raise ValueError(f"the window must be a whole number of seconds, 1s or more, got {seconds:g}s")
        return window


class DestinationSettings(_Model):
    subset: str | None = None
    host: str | None = None
    backend_ref: str | None = None

    @model_validator(mode="after")
    def _some(self) -> DestinationSettings:
        if self.subset is None and self.host is None and self.backend_ref is None:
            raise ValueError("name the destination by subset, host or backendRef")
        return self

    def selector(self) -> dict[str, str | None]:
        """The destination fields this names, by their policy names (what a route kind's `matches` takes)."""
        return {"subset": self.subset, "host": self.host, "backendRef": self.backend_ref}


class CanarySettings(_Model):
    name: str = Field(pattern=_NAME)
    # The namespace may be empty for manifests that leave it to kustomize or the applier, as targets do.
    route: str = Field(pattern=CANARY_ROUTE_PATTERN)
    stable: DestinationSettings
    canary: DestinationSettings
    steps: tuple[int, ...] = Field(min_length=1)
    interval: Duration = timedelta(minutes=10)
    analysis: AnalysisSettings
    on_failure: Literal["rollback", "hold"] = "rollback"
    on_complete: Literal["hold", "promote"] = "hold"
    on_new_image: Literal["restart", "continue"] = "restart"
    image: str | None = None
    promote_to: str | None = None
    traffic_tolerance: float = Field(default=5.0, ge=0, le=100)
    apply_timeout: Duration = timedelta(minutes=15)

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 < s <= 100 for s in steps) or list(steps) != sorted(set(steps)) or steps[-1] != 100:
            raise ValueError(f"steps must increase strictly within 1..100 and end at 100, got {list(steps)}")
        return steps


class SlackSettings(_Model):
    webhook_env: EnvName


class WebhookSettings(_Model):
    url_env: EnvName


class NotificationSettings(_Model):
    slack: SlackSettings | None = None
    webhook: WebhookSettings | None = None

    @model_validator(mode="after")
    def _one(self) -> NotificationSettings:
        if (self.slack is None) == (self.webhook is None):
            raise ValueError("each notification is either slack or webhook")
        return self


class PolicySpec(_Model):
    git: GitSettings
    delivery: DeliverySettings = DeliverySettings()
    schedule: ScheduleSettings = ScheduleSettings(interval=timedelta(minutes=5))
    images: tuple[ImageSettings, ...] = ()
    registries: tuple[RegistrySettings, ...] = ()
    canaries: tuple[CanarySettings, ...] = ()
    notifications: tuple[NotificationSettings, ...] = ()
    registry_limits: RegistryLimits = RegistryLimits()
    # A cycle still planning after this stops before it delivers anything.
    timeout: Duration = timedelta(minutes=10)


class Metadata(_Model):
    name: str = Field(pattern=_NAME)


class Policy(_Model):
    api_version: Literal["gitbot.dev/v1alpha1"]
    kind: Literal["Policy"]
    metadata: Metadata
    spec: PolicySpec
    source: str = Field(default="", exclude=True)
    lines: Mapping[str, int] = Field(default_factory=dict, exclude=True, repr=False)
    # The policies this one's promotion gates name, by name (set when the policies are loaded together).
    upstream: Mapping[str, Policy] = Field(default_factory=dict, exclude=True, repr=False)

    @model_validator(mode="after")
    def _references(self) -> Policy:
        """Checks across fields; each names the field at fault (a ConfigError passes through pydantic)."""
        spec = self.spec
        seen: set[str] = set()
        named = [(f"/spec/images/{i}/name", x.name) for i, x in enumerate(spec.images)]
        named += [(f"/spec/canaries/{i}/name", x.name) for i, x in enumerate(spec.canaries)]
        for pointer, name in named:
            if name in seen:
                raise self.error(pointer, f"{name!r} is already the name of an image or canary; names must be unique")
            if name.startswith(MANUAL_PREFIXES):
                raise self.error(pointer, f"{name!r} starts like the branch of a change made by hand; rename it")
            if name == GROUP_ALL_NAME and spec.delivery.group == "all":
                raise self.error(pointer, f"{name!r} names the one change of group: all; choose another name")
            seen.add(name)
        for index, image in enumerate(spec.images):
            pointer = f"/spec/images/{index}/repository"
            parsed = parse_image(image.repository, where=self.where(pointer))
            if parsed.tag or parsed.digest:
                raise self.error(pointer, f"{image.repository!r} names a tag or digest; give the repository only")
            self.image_filter(index)
            if image.verify is not None and image.verify.cosign.public_key_file is not None:
                self.cosign_key_file(index)
        images = {image.name for image in spec.images}
        for index, canary in enumerate(spec.canaries):
            base = f"/spec/canaries/{index}"
            for key, ref in (("image", canary.image), ("promoteTo", canary.promote_to)):
                if ref is not None and ref not in images:
                    raise self.error(f"{base}/{key}", f"{ref!r} is not the name of one of spec.images")
            if canary.on_complete == "promote" and not (canary.image and canary.promote_to):
                raise self.error(
                    f"{base}/onComplete", "promote needs image (the canary's image) and promoteTo (the GA image)"
                )
            checks = [check.spec() for check in canary.analysis.checks]
            if canary.on_complete == "promote" and not any(check.judged_at_full_weight for check in checks):
                # At 100 percent comparisons use GA's figures from before that step, but a custom query naming
                # {stable} cannot be judged then, and a request count alone is no pass: it would never complete.
                raise self.error(
                    f"{base}/analysis/checks",
                    "onComplete: promote needs a check that can be judged at 100%: every check is a custom "
                    "query that names {stable}, and GA takes no traffic then; add a built-in check "
                    "(success-rate, latency-p99, error-rate, latency) or a custom query without {stable}",
                )
            if not canary.route.split("/")[1] and canary.analysis.namespace is None:
                raise self.error(
                    f"{base}/analysis", "the route names no namespace: give analysis.namespace (the workloads')"
                )
            route_kind = routes.named(canary.route.split("/")[0])
            for side, dest in (("stable", canary.stable), ("canary", canary.canary)):
                if any(value is not None and key not in route_kind.selectors for key, value in dest.selector().items()):
                    names = " or ".join(route_kind.selectors)
                    raise self.error(f"{base}/{side}", f"{route_kind.noun} names its destinations by {names}")
        return self

    @model_validator(mode="after")
    def _notify_after_cycles(self) -> Policy:
        """The older form of notifyAfterInconclusive counts cycles, which only an interval schedule spaces evenly."""
        for index, canary in enumerate(self.spec.canaries):
            cycles = canary.analysis.notify_after_inconclusive
            if isinstance(cycles, int) and self.spec.schedule.interval is None:
                raise self.error(
                    f"/spec/canaries/{index}/analysis/notifyAfterInconclusive",
                    f"{cycles} counts cycles, which a cron schedule does not space evenly; "
                    "give how long the analysis may stay inconclusive since the step, e.g. 30m",
                )
        return self

    def notify_after(self, index: int) -> timedelta:
        """How long canary `index` may stay inconclusive since its step before someone is told.

        The older whole-number form counts cycles of the policy's schedule: that many intervals.
        """
        value = self.spec.canaries[index].analysis.notify_after_inconclusive
        if isinstance(value, timedelta):
            return value
        interval = self.spec.schedule.interval
        assert interval is not None  # refused at load for cron schedules
        return value * interval

    def image_filter(self, index: int) -> TagFilter:
        """The compiled tag filter of image `index`; a bad one is a FilterError naming its place in the file."""
        image = self.spec.images[index]
        return parse_filter(
            image.filter,
            allow_prerelease=image.allow_prerelease,
            extract=image.extract,
            order=image.order,
            where=self.where(f"/spec/images/{index}/filter"),
        )

    def cosign_key_file(self, index: int) -> PublicKey:
        """The cosign public key image `index` names by file (relative to the policy file), checked at load."""
        cosign = self.spec.images[index].verify
        assert cosign is not None and cosign.cosign.public_key_file is not None
        where = self.where(f"/spec/images/{index}/verify/cosign/publicKeyFile")
        path = Path(cosign.cosign.public_key_file)
        if not path.is_absolute() and self.source:
            path = Path(self.source).parent / path
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the cosign public key {path}: {type(exc).__name__}", where=where) from None
        return load_public_key(pem, where=where)

    def error(self, pointer: str, message: str) -> ConfigError:
        """A ConfigError at `pointer` of this policy (`file:line field: message`, as `where` writes it)."""
        return ConfigError(message, where=self.where(pointer))

    @property
    def name(self) -> str:
        return self.metadata.name

    def where(self, pointer: str) -> str:
        """`file:line: field` for a field of this policy: every policy error reads `file:line: field: message`."""
        return f"{self.source}:{line_of(self.lines, pointer)}: {pointer_to_field(pointer)}"


def line_of(lines: Mapping[str, int], pointer: str) -> int:
    """The line of `pointer`, or of its nearest ancestor that has one."""
    while pointer and pointer not in lines:
        pointer = pointer.rsplit("/", 1)[0]
    return lines.get(pointer, 1)


def pointer_to_field(pointer: str) -> str:
    """`/spec/images/0/filter` -> `spec.images[0].filter`."""
    out = ""
    for part in pointer.split("/")[1:]:
        out += f"[{part}]" if part.isdigit() else f".{part}"
    return out.lstrip(".") or "(document)"


def _pointer(loc: tuple[int | str, ...]) -> str:
    return "".join(f"/{part}" for part in loc if not (isinstance(part, str) and "[" in part))


def load_policy(path: Path) -> Policy:
    """Read and validate one policy file; ConfigError (file:line field: what is expected) otherwise."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read policy file: {exc.__class__.__name__}", where=source) from exc
    try:
        data, lines = load_with_positions(text, source=source)
    except ManifestError as exc:
        raise ConfigError(exc.message, where=exc.where) from exc
    if not isinstance(data, dict):
        raise ConfigError("a policy file must hold a mapping with apiVersion, kind, metadata and spec", where=source)
    if data.get("apiVersion") != API_VERSION:
        raise ConfigError(
            f"apiVersion: must be {API_VERSION}, got {data.get('apiVersion')!r}",
            where=f"{source}:{line_of(lines, '/apiVersion')}",
        )
    try:
        policy = Policy.model_validate({**data, "source": source, "lines": lines}, context=FROM_FILE)
    except ValidationError as exc:
        raise _config_error(exc, source, lines) from None
    return policy


def _config_error(exc: ValidationError, source: str, lines: Mapping[str, int]) -> ConfigError:
    # A misspelt field also makes the field it should have been missing: the unknown one is the cause, said first.
    errors = sorted(exc.errors(include_url=False), key=lambda error: error["type"] != "extra_forbidden")
    first = errors[0]
    pointer = _pointer(tuple(first["loc"]))
    message = _explain(first)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    field = pointer_to_field(pointer)
    return ConfigError(f"{field}: {message}{more}", where=f"{source}:{line_of(lines, pointer)}")


def _explain(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return _unknown_field(tuple(error["loc"]))
    if kind == "literal_error":
        return f"must be one of {error['ctx']['expected']}, got {error['input']!r}"
    if kind == "string_pattern_mismatch":
        form = _FORMS.get(error["ctx"]["pattern"], "see the policy reference for its form")
        return f"{error['input']!r}: expected {form}"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


# The forms that fields with a pattern take, in words and with an example (a regular expression helps nobody).
_FORMS = {
    CANARY_ROUTE_PATTERN: "Kind/namespace/name, such as VirtualService/test/podinfo or HTTPRoute/test/podinfo "
    f"(Kind is one of {', '.join(kind.kind for kind in routes.KINDS)}; the namespace may be left empty: "
    "VirtualService//podinfo)",
    TARGET_RESOURCE_PATTERN: "Kind/namespace/name, such as Deployment/test/podinfo (the namespace may be left "
    "empty: Deployment//podinfo)",
    _NAME: "a name of lower-case letters, digits and '-' that starts and ends with a letter or digit, "
    "at most 63 characters, such as podinfo-ga",
    PROMOTION_AFTER_PATTERN: "<policy>/<image>, the names of a policy and one of its images, such as staging/podinfo",
    GITHUB_REPOSITORY_PATTERN: "owner/name, such as acme/cluster-config",
}

# Fields of other tools (Flagger, Flux, Argo Rollouts) people bring along, and what they are called here.
_MEANT = {
    "weights": "steps",
    "weight": "steps",
    "stepWeights": "steps",
    "stepWeight": "steps",
    "maxWeight": "steps",
    "prometheusUrl": "prometheus",
    "metricsServer": "prometheus",
    "address": "url",
    "metrics": "checks",
    "tagFilter": "filter",
    "filterTags": "filter",
    "pattern": "filter",
    "image": "repository",
    "ref": "branch",
    "token": "tokenEnv",
    "webhook": "webhookEnv",
}


def _unknown_field(loc: tuple[int | str, ...]) -> str:
    """What to say of an unknown field at `loc`: the field meant (by another tool's name or by spelling)."""
    known = _known_fields(loc[:-1])
    if not known:
        return "is not a known field (check the spelling against the policy reference)"
    name = str(loc[-1])
    meant = _MEANT.get(name)
    if meant is None or meant not in known:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        close = close or [k for k in known if k.lower() == name.lower().replace("_", "").replace("-", "")]
        meant = close[0] if close else None
    if meant is None:
        return f"is not a known field (known: {', '.join(known)})"
    if meant == "prometheus" and name != meant:
        meant = "prometheus: {url: ...}"  # a mapping here, where other tools take the URL itself
    return f"is not a known field; did you mean {meant}?"


def _known_fields(loc: tuple[int | str, ...]) -> list[str]:
    """The field names (as written in a policy) of the mapping at `loc`, or [] when it is not a settings model."""
    model: type[BaseModel] | None = Policy
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        model = _model_in(field.annotation) if field is not None else None
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items() if not field.exclude]


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The settings model inside `annotation` (`X`, `X | None`, `tuple[X, ...]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (tuple, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def load_policies(directory: Path) -> list[Policy]:
    """Every `*.yaml`/`*.yml` policy in `directory`, sorted by name; names must be unique."""
    if not directory.is_dir():
        raise ConfigError("policy directory does not exist", where=str(directory))
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not files:
        raise ConfigError("no policy files (*.yaml) found", where=str(directory))
    policies = [load_policy(path) for path in files]
    seen: dict[str, str] = {}
    for policy in policies:
        if policy.name in seen:
            raise ConfigError(
                f"policy name {policy.name!r} is already used by {seen[policy.name]}",
                where=f"{policy.source}:{line_of(policy.lines, '/metadata/name')}",
            )
        seen[policy.name] = policy.source
    return link_gates(policies)


def link_gates(policies: Sequence[Policy], others: Sequence[Policy] = ()) -> list[Policy]:
    """`policies`, each given the policies its promotion gates name (from `policies` and `others`).

    A gate that names an unknown policy or image, its own policy, or a chain of gates that comes back to
    where it started is a ConfigError at the gate's line.
    """
    known = {policy.name: policy for policy in (*others, *policies)}
    linked = []
    for policy in policies:
        upstream: dict[str, Policy] = {}
        for index, image in enumerate(policy.spec.images):
            if image.promotion is None:
                continue
            pointer = f"/spec/images/{index}/promotion/after"
            gate = image.promotion
            earlier = known.get(gate.policy)
            if earlier is None:
                names = ", ".join(sorted(known)) or "none"
                raise policy.error(
                    pointer, f"{gate.after!r} names no loaded policy {gate.policy!r} (policies: {names})"
                )
            if earlier.name == policy.name:
                raise policy.error(pointer, f"{gate.after!r} names this policy; a gate names an earlier environment")
            if gate.image not in {i.name for i in earlier.spec.images}:
                images = ", ".join(i.name for i in earlier.spec.images) or "none"
                raise policy.error(
                    pointer, f"{gate.after!r}: policy {earlier.name} has no image {gate.image!r} (images: {images})"
                )
            if _gate_loop(known, earlier.name, policy.name):
                raise policy.error(pointer, f"{gate.after!r}: the gates of {earlier.name} lead back to {policy.name}")
            upstream[earlier.name] = earlier
        linked.append(policy.model_copy(update={"upstream": upstream}) if upstream else policy)
    return linked


def _gate_loop(known: Mapping[str, Policy], start: str, target: str) -> bool:
    """Whether following promotion gates from policy `start` reaches policy `target`."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name == target:
            return True
        if name in seen or name not in known:
            continue
        seen.add(name)
        todo += [i.promotion.policy for i in known[name].spec.images if i.promotion is not None]
    return False


def find_policy(directory: Path, name: str) -> Policy:
    """The policy called `name` in `directory` (or the file `name` itself when it is a path)."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        policy = load_policy(candidate)
        if not any(image.promotion for image in policy.spec.images):
            return policy
        # Its gates name other policies: those of the policies directory.
        others = [p for p in load_policies(directory) if p.name != policy.name] if directory.is_dir() else []
        return link_gates([policy], others)[0]
    for policy in load_policies(directory):
        if policy.name == name:
            return policy
    raise ConfigError(f"no policy named {name!r}", where=str(directory), hint="gitbot validate lists them")


def secret_from_env(env: Mapping[str, str], name: str | None, *, field: str) -> str | None:
    """The value of environment variable `name` (referenced by `field`); an error when it is unset."""
    if name is None:
        return None
    value = env.get(name)
    if not value:
        raise ConfigError(f"environment variable {name} (named by {field}) is not set or empty")
    return value


def env_references(policy: Policy) -> list[tuple[str, str]]:
    """(pointer, variable name) of every environment variable `policy` names and a cycle would read, in order.

    The GitHub token only in pull-request mode, where it is used.
    """
    spec = policy.spec
    refs: list[tuple[str, str | None]] = [("/spec/git/tokenEnv", spec.git.token_env)]
    if spec.delivery.mode == "pull-request" and spec.delivery.github is not None:
        refs.append(("/spec/delivery/github/tokenEnv", spec.delivery.github.token_env))
    for index, registry in enumerate(spec.registries):
        refs.append((f"/spec/registries/{index}/usernameEnv", registry.username_env))
        refs.append((f"/spec/registries/{index}/passwordEnv", registry.password_env))
    for index, image in enumerate(spec.images):
        cosign = image.verify.cosign if image.verify is not None else None
        refs.append((f"/spec/images/{index}/verify/cosign/publicKeyEnv", cosign.public_key_env if cosign else None))
    for index, canary in enumerate(spec.canaries):
        refs.append((f"/spec/canaries/{index}/analysis/prometheus/tokenEnv", canary.analysis.prometheus.token_env))
    for index, notification in enumerate(spec.notifications):
        if notification.slack is not None:
            refs.append((f"/spec/notifications/{index}/slack/webhookEnv", notification.slack.webhook_env))
        if notification.webhook is not None:
            refs.append((f"/spec/notifications/{index}/webhook/urlEnv", notification.webhook.url_env))
    return [(pointer, name) for pointer, name in refs if name is not None]


def unset_variables(policy: Policy, env: Mapping[str, str]) -> list[ConfigError]:
    """One ConfigError at its line for each variable `policy` names that is not set (or empty) in `env`."""
    return [
        ConfigError(f"environment variable {name} is not set or empty", where=policy.where(pointer))
        for pointer, name in env_references(policy)
        if not env.get(name)
    ]
