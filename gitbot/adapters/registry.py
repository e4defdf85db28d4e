"""OCI distribution v2 client: the tag lists of image repositories.

This adapter owns everything about talking to a container registry: where an image name lives (Docker Hub
normalisation, plain HTTP only for loopback or configured-insecure hosts), credentials (environment
variables and Docker's `config.json` `auths`, never a policy file), anonymous, basic and bearer-token
access, `Link` pagination with a page cap and loop detection, retries with backoff that honour
`Retry-After`, a per-host limit of requests at once and of requests per second (a token bucket, so a burst of
independent lookups goes out together), and a cache of tag lists with a TTL and conditional requests.
Every answer is bounded: its size (streamed and cut off), its time (a total deadline per request, not only
per read), its nesting depth and the number of tags per image.

It also describes single tags for image policies that ask (`inspect_tag`): the manifest digest a tag serves
(a HEAD with the manifest media types, revalidated by ETag), the image's creation time from its config blob
and the cosign signatures stored under the digest's `.sig` tag (blobs checked against their digests).

It returns the tags exactly as the registry sent them; it does not filter, order or validate tags (that is
`gitbot.versioning`). Secrets never appear in its errors or log records: messages name the host, the
repository and the HTTP status only.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

import httpcore
import httpx
import tenacity

from gitbot.domain import CosignSignature, TagFacts
from gitbot.errors import AuthError, ConfigError, RegistryError, RegistryTlsError
from gitbot.imageref import parse_image, split_registry

log = logging.getLogger(__name__)
_K = TypeVar("_K")
_V = TypeVar("_V")

DOCKER_HUB = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", DOCKER_HUB})
_DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Defaults of the limits (policy `spec.registryLimits` overrides them): a tag list of 50,000 tags of 30
# characters is about 2 MiB of JSON, so 8 MiB leaves room without letting one answer take gigabytes.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
MAX_TAGS = 50_000
REQUEST_DEADLINE = 30.0
_CHALLENGE_PARAM_RE = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,"]+))')
_LINK_RE = re.compile(r"<([^>]*)>\s*((?:;\s*[^,;]+)*)")


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or access token) for one registry host; the secret never prints."""

    username: str
    password: str = field(repr=False)


class CredentialSource(Protocol):
    def __call__(self, host: str) -> Credentials | None:
        """Credentials for registry `host` (`name[:port]`), or None for anonymous access."""
        ...


def env_key(host: str) -> str:
    """The environment-variable infix for `host`: `ghcr.io` -> `GHCR_IO`, Docker Hub -> `DOCKER_IO`."""
    if host in _DOCKER_HUB_ALIASES:
        host = "docker.io"
    return re.sub(r"[^A-Z0-9]", "_", host.upper())


class EnvironmentCredentials:
    """Credentials from `GITBOT_REGISTRY_<HOST>_USERNAME`/`_PASSWORD`, then Docker's `config.json`.

    `<HOST>` is the host name upper-cased with every other character as `_` (see `env_key`). The Docker
    file is `config_path`, else `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`; only its
    `auths` entries (`auth` = base64 `user:password`, or `username` + `password`) are read. Credential
    helpers (`credsStore`, `credHelpers`) are not run.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, config_path: Path | None = None) -> None:
        self._environ = dict(os.environ if environ is None else environ)
        if config_path is None:
            folder = self._environ.get("DOCKER_CONFIG")
            config_path = Path(folder) / "config.json" if folder else Path.home() / ".docker" / "config.json"
        self._config_path = config_path
        self._auths: dict[str, Credentials] | None = None

    def __call__(self, host: str) -> Credentials | None:
        key = env_key(host)
        username = self._environ.get(f"GITBOT_REGISTRY_{key}_USERNAME")
        password = self._environ.get(f"GITBOT_REGISTRY_{key}_PASSWORD")
        if username and password:
            return Credentials(username, password)
        auths = self._docker_auths()
        if host in _DOCKER_HUB_ALIASES:
            return next((auths[name] for name in _DOCKER_HUB_ALIASES if name in auths), None)
        return auths.get(host)

    def _docker_auths(self) -> dict[str, Credentials]:
        if self._auths is not None:
            return self._auths
        self._auths = {}
        path = self._config_path
        if not path.is_file():
            return self._auths
        where = str(path)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read Docker config: {type(exc).__name__}", where=where) from exc
        entries = document.get("auths", {}) if isinstance(document, dict) else None
        if not isinstance(entries, dict):
            raise ConfigError("Docker config: `auths` is not an object", where=where)
        for name, entry in entries.items():
            host = _config_host(name)
            if not isinstance(entry, dict):
                raise ConfigError(f"Docker config: auths[{name!r}] is not an object", where=where)
            creds = _entry_credentials(entry)
            if creds is None and entry.get("auth"):
                raise ConfigError(f"Docker config: auths[{name!r}].auth is not base64 user:password", where=where)
            if creds is not None:
                self._auths[host] = creds
        return self._auths


def _config_host(name: str) -> str:
    if name == _DOCKER_HUB_CONFIG_KEY:
        return "docker.io"
    if "://" in name:
        return urlsplit(name).netloc
    return name.split("/", 1)[0]


def _entry_credentials(entry: Mapping[str, object]) -> Credentials | None:
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, sep, secret = base64.b64decode(auth, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return Credentials(user, secret) if sep and user else None
    name, word = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(word, str) and name and word:
        return Credentials(name, word)
    return None


def locate(image: str) -> tuple[str, str]:
    """(registry host, repository path) for `image`, Docker Hub normalised.

    `podinfo` -> (`registry-1.docker.io`, `library/podinfo`); `docker.io/x/y` -> Docker Hub `x/y`;
    `ghcr.io/a/b` and `127.0.0.1:5000/a` stay as written. A tag or digest in `image` is ignored.
    """
    ref = parse_image(image)
    host, path = split_registry(ref.repository)
    if host is None or host in _DOCKER_HUB_ALIASES:
        host = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    return host, path


def is_loopback(host: str) -> bool:
    """True for `localhost`, `127.x.y.z` and `[::1]`, with or without a port."""
    name = urlsplit(f"//{host}").hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass
class _Answer:
    status: int
    headers: httpx.Headers
    body: bytes
    url: str


class _Retry(Exception):
    """A response or failure worth another attempt; `retry_after` is the server's wish, if any."""

    def __init__(self, host: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.message = message
        self.retry_after = retry_after


@dataclass
class _CacheEntry:
    tags: tuple[str, ...]
    fetched: float  # when the registry last sent or confirmed (304) this list
    etag: str | None


class OciRegistry:
    """`gitbot.ports.Registry` over the OCI distribution API v2 (httpx, tenacity).

    Options: `credentials` (a CredentialSource; default none, anonymous), `insecure_hosts` (hosts, with or
    without port, that may use plain HTTP besides loopback), `timeout` seconds per request, `page_size`
    (`n=`), `max_pages` per listing, `rate_limit` requests per second per host on average (None: unlimited)
    with bursts of `burst` requests (default: `concurrency`), `concurrency` requests in flight per host,
    `cache_ttl` seconds a tag list is reused (0: never), `max_attempts` per request, `backoff` seconds
    (doubled each retry), `max_wait` longest single wait (a longer `Retry-After` fails at once),
    `max_response_bytes` per answer, `max_tags` per image, `request_deadline` seconds for one whole request
    (headers and body; `timeout` bounds each read), and
    `clock` (monotonic seconds) / `sleep` for tests, `on_page` called with (image, pages fetched, tags so
    far) after each page of a listing (progress for interactive commands). Any number of threads may list
    tags at once (the per-host limits hold across them); keep one instance for the life of the process so
    that its cache, tokens and rate limit carry across cycles.
    """

    CACHE_TTL = 60.0

    def __init__(
        self,
        *,
        credentials: CredentialSource | None = None,
        insecure_hosts: Collection[str] = (),
        timeout: float = 10.0,
        page_size: int = 1000,
        max_pages: int = 100,
        rate_limit: float | None = 10.0,
        cache_ttl: float = CACHE_TTL,
        max_attempts: int = 4,
        backoff: float = 0.5,
        max_wait: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        user_agent: str = "gitbot",
        on_page: Callable[[str, int, int], None] | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_tags: int = MAX_TAGS,
        request_deadline: float = REQUEST_DEADLINE,
        concurrency: int = 10,
        burst: int | None = None,
    ) -> None:
        if concurrency < 1 or (burst is not None and burst < 1):
            raise ValueError("concurrency and burst must be at least 1")
        if page_size < 1 or max_pages < 1 or max_attempts < 1 or max_response_bytes < 1 or max_tags < 1:
            raise ValueError("page_size, max_pages, max_attempts, max_response_bytes and max_tags must be at least 1")
        if request_deadline <= 0:
            raise ValueError("request_deadline must be more than 0 seconds")
        self._max_body = max_response_bytes
        self._max_tags = max_tags
        self._deadline = request_deadline
        self._credentials = credentials
        self._insecure = frozenset(insecure_hosts)
        self._page_size = page_size
        self._max_pages = max_pages
        self._rate = float(rate_limit) if rate_limit else 0.0
        self._burst = float(burst if burst is not None else concurrency)
        self._concurrency = concurrency
        self._cache_ttl = cache_ttl
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._on_page = on_page
        self._client = httpx.Client(
            timeout=min(timeout, request_deadline),
            follow_redirects=False,
            headers={"User-Agent": user_agent},
            trust_env=False,
            transport=_TransportPerScheme(),
        )
        # The sockets of this client's connections (from httpcore's `trace` events), so that a request past
        # its deadline can be cut even while it waits for headers, where no per-read timeout helps.
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        # Guards the shared state below: counters, token buckets, the socket set and the host slots.
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._here = threading.local()
        self._requests: Counter[str] = Counter()
        self._cache: dict[tuple[str, str], _CacheEntry] = {}
        self._schemes: dict[str, str] = {}
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        # The bearer challenge (realm, service) each host sent, to ask for the token of a new scope up front.
        self._challenges: dict[str, dict[str, str]] = {}
        # Tag facts (see `inspect_tag`): digests by tag with their ETag, and what never changes by digest.
        self._tag_digests: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._created: dict[str, datetime | None] = {}
        self._signature_sets: dict[tuple[str, str, str], tuple[str, tuple[CosignSignature, ...]]] = {}
        self._payloads: dict[str, bytes] = {}
        self.cache_hits = 0
        self.retries = 0

    # -- public ---------------------------------------------------------------------------------------

    @property
    def requests(self) -> dict[str, int]:
        """HTTP requests sent so far, per host (`name[:port]`), token servers included."""
        with self._lock:
            return dict(self._requests)

    @property
    def sent_by_this_thread(self) -> int:
        """HTTP requests sent so far by the calling thread's lookups (all hosts)."""
        return int(getattr(self._here, "sent", 0))

    def clear_cache(self) -> None:
        """Forget cached tag lists (tokens and counters stay)."""
        self._cache.clear()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OciRegistry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def endpoint(self, image: str) -> str:
        """The `tags/list` URL (without query) this client uses for `image`."""
        host, path = locate(image)
        return f"{self._scheme(host)}://{host}/v2/{path}/tags/list"

    def list_tags(self, image: str, *, max_age: float | None = None) -> list[str]:
        """Every tag of `image`, in the registry's order, following `Link` pages up to the page cap.

        A cached list younger than `max_age` seconds (default: the client's `cache_ttl`) is returned as it
        is; an older one is kept and revalidated with its ETag, so an unchanged list costs a 304.
        """
        host, path = locate(image)
        key = (host, path)
        entry = self._cache.get(key)
        now = self._clock()
        fresh_for = self._cache_ttl if max_age is None else max_age
        if entry is not None and now < entry.fetched + fresh_for:
            with self._lock:
                self.cache_hits += 1
            return list(entry.tags)
        base = f"{self._scheme(host)}://{host}"
        url = f"{self.endpoint(image)}?{urlencode({'n': self._page_size})}"
        tags: list[str] = []
        seen: set[str] = set()
        etag: str | None = None
        for page in range(self._max_pages):
            seen.add(url)
            extra = {}
            if page == 0 and entry is not None and entry.etag:
                extra["If-None-Match"] = entry.etag
            answer = self._get(host, path, url, extra)
            if answer.status == 304 and page == 0 and entry is not None:
                with self._lock:
                    self.cache_hits += 1
                entry.fetched = self._clock()
                return list(entry.tags)
            self._check(answer, host, path)
            tags.extend(self._page_tags(answer, host, path))
            if len(tags) > self._max_tags:
                raise RegistryError(
                    f"registry {host}: {path} has more than {self._max_tags} tags; not listed",
                    hint="raise spec.registryLimits.maxTags, or clean up the repository's tags",
                    retryable=False,
                )
            if self._on_page is not None:
                self._on_page(image, page + 1, len(tags))
            if page == 0:
                etag = answer.headers.get("ETag")
            following = _next_link(answer.headers.get_list("Link"))
            if following is None:
                break
            url = urljoin(answer.url, following)
            split = urlsplit(url)
            if f"{split.scheme}://{split.netloc}" != base:
                raise RegistryError(f"registry {host}: {path} tag list links to another host; refused")
            if url in seen:
                raise RegistryError(f"registry {host}: {path} tag list pages loop (a Link repeats)")
        else:
            raise RegistryError(
                f"registry {host}: {path} has more than {self._max_pages} pages of {self._page_size} tags",
                hint="raise the page cap or the page size",
            )
        # A multi-page listing cannot be revalidated with one ETag, so only single pages keep theirs.
        single = len(seen) == 1
        if self._cache_ttl > 0:
            self._cache[key] = _CacheEntry(tuple(tags), self._clock(), etag if single else None)
        return tags

    # -- HTTP -----------------------------------------------------------------------------------------

    def _scheme(self, host: str) -> str:
        scheme = self._schemes.get(host)
        if scheme is None:
            name = urlsplit(f"//{host}").hostname or host
            plain = is_loopback(host) or host in self._insecure or name in self._insecure
            scheme = self._schemes[host] = "http" if plain else "https"
        return scheme

    def _check(self, answer: _Answer, host: str, path: str) -> None:
        if answer.status == 200:
            return
        if answer.status == 404:
            raise RegistryError(
                f"registry {host}: repository {path} not found (404)", hint="check the image name", retryable=False
            )
        if answer.status in (401, 403):
            raise AuthError(
                f"registry {host}: access to {path} refused ({answer.status})",
                hint=f"set GITBOT_REGISTRY_{env_key(host)}_USERNAME/_PASSWORD or a Docker config.json login",
            )
        raise RegistryError(f"registry {host}: listing {path} failed with HTTP {answer.status}")

    def _page_tags(self, answer: _Answer, host: str, path: str) -> list[str]:
        try:
            document = json.loads(answer.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(f"registry {host}: tag list of {path} is not JSON") from exc
        except RecursionError:
            # `[[[[...` many thousands deep exhausts the parser's stack; no tag list is shaped like that.
            raise RegistryError(f"registry {host}: tag list of {path} is nested too deeply") from None
        if not isinstance(document, dict):
            raise RegistryError(f"registry {host}: tag list of {path} is not a JSON object")
        tags = document.get("tags")
        if tags is None:
            return []
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise RegistryError(f"registry {host}: tag list of {path} is not a list of strings")
        return tags

    def _get(self, host: str, path: str, url: str, extra: Mapping[str, str], method: str = "GET") -> _Answer:
        """GET `url` with whatever authorisation `host` asked for, answering one 401 challenge."""
        scope = f"repository:{path}:pull"
        answer = self._send(host, url, {**extra, **self._authorisation(host, scope, ask=True)}, method)
        if answer.status != 401:
            return answer
        challenge = answer.headers.get("WWW-Authenticate", "")
        scheme, params = _parse_challenge(challenge)
        creds = self._credentials(host) if self._credentials else None
        if scheme == "bearer" and params.get("realm"):
            token = self._fetch_token(host, params, params.get("scope") or scope, creds)
            self._tokens[(host, scope)] = token
            self._challenges[host] = {name: value for name, value in params.items() if name != "scope"}
            return self._send(host, url, {**extra, "Authorization": f"Bearer {token[0]}"}, method)
        if scheme == "basic" and creds is not None:
            self._tokens[(host, "basic")] = (_basic(creds), float("inf"))
            return self._send(host, url, {**extra, "Authorization": _basic(creds)}, method)
        return answer

    def _authorisation(self, host: str, scope: str, *, ask: bool = False) -> dict[str, str]:
        """The `Authorization` header for `scope` on `host`, if one is known; with `ask`, a host that asked
        for bearer tokens before gets a new token for `scope` now, so that the request is not refused first
        (a round trip and a request of the host's budget saved per image and per expired token)."""
        basic = self._tokens.get((host, "basic"))
        if basic is not None:
            return {"Authorization": basic[0]}
        token = self._tokens.get((host, scope))
        if token is not None and self._clock() < token[1]:
            return {"Authorization": f"Bearer {token[0]}"}
        challenge = self._challenges.get(host)
        if not ask or challenge is None:
            return {}
        creds = self._credentials(host) if self._credentials else None
        token = self._tokens[(host, scope)] = self._fetch_token(host, challenge, scope, creds)
        return {"Authorization": f"Bearer {token[0]}"}

    def _fetch_token(
        self, host: str, params: Mapping[str, str], scope: str, creds: Credentials | None
    ) -> tuple[str, float]:
        realm = params["realm"]
        split = urlsplit(realm)
        if split.scheme not in ("http", "https") or not split.netloc:
            raise RegistryError(f"registry {host}: token realm is not an HTTP URL")
        if split.scheme == "http" and not (is_loopback(split.netloc) or split.netloc in self._insecure):
            raise RegistryError(f"registry {host}: token realm {split.netloc} is plain HTTP; refused")
        query = {"scope": scope}
        if params.get("service"):
            query["service"] = params["service"]
        headers = {"Authorization": _basic(creds)} if creds is not None else {}
        sep = "&" if split.query else "?"
        answer = self._send(split.netloc, f"{realm}{sep}{urlencode(query)}", headers)
        if answer.status in (401, 403):
            raise AuthError(
                f"registry {host}: token server {split.netloc} refused the credentials ({answer.status})",
                hint=f"check GITBOT_REGISTRY_{env_key(host)}_USERNAME/_PASSWORD or the Docker login",
            )
        if answer.status != 200:
            raise RegistryError(f"registry {host}: token server {split.netloc} answered HTTP {answer.status}")
        try:
            document = json.loads(answer.body)
            token = document.get("token") or document.get("access_token")
            lifetime = float(document.get("expires_in") or 60)
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
            raise RegistryError(f"registry {host}: token server {split.netloc} sent garbage") from exc
        except RecursionError:
            raise RegistryError(f"registry {host}: token server {split.netloc} sent JSON nested too deeply") from None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"registry {host}: token server {split.netloc} sent no token")
        # Renew a little early so a token does not expire between check and use.
        return token, self._clock() + max(lifetime - 5, 1)

    def _send(self, host: str, url: str, headers: Mapping[str, str], method: str = "GET") -> _Answer:
        """One GET (or `method`) with rate limiting and retries on 429/5xx/transport failures."""

        def attempt() -> _Answer:
            self._throttle(host)
            with self._slot(host):
                with self._lock:
                    self._requests[host] += 1
                self._here.sent = self.sent_by_this_thread + 1
                started = time.monotonic()
                cut = threading.Event()
                watchdog = threading.Timer(self._deadline, self._cut_connections, (cut,))
                watchdog.daemon = True
                watchdog.start()
                try:
                    with self._client.stream(
                        method, url, headers=dict(headers), extensions={"trace": self._trace}
                    ) as response:
                        body = self._read_body(response, host, url, started)
                except httpx.TransportError as exc:
                    if cut.is_set():
                        raise self._too_slow(host, url) from None
                    tls = _tls_failure(exc)
                    if tls is not None:
                        raise _tls_error(host, tls) from exc
                    raise _Retry(host, f"cannot reach {host} ({type(exc).__name__})") from exc
                finally:
                    watchdog.cancel()
            log.debug("%s %s%s -> %d", method, host, urlsplit(url).path, response.status_code)
            if response.status_code in _RETRY_STATUSES:
                raise _Retry(
                    host,
                    f"{host} answered HTTP {response.status_code}",
                    _retry_after(response.headers.get("Retry-After")),
                )
            return _Answer(response.status_code, response.headers, body, str(response.url))

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Retry),
            sleep=self._sleep,
            before_sleep=self._count_retry,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retry as exc:
            raise RegistryError(
                f"registry {host}: {exc.message}, {self._max_attempts} attempt(s)", hint="retry later"
            ) from exc

    def _read_body(self, response: httpx.Response, host: str, url: str, started: float) -> bytes:
        """The body of `response`, read in chunks as they come and cut off at the size and time limits.

        The deadline counts from the request (headers included) on the real monotonic clock: the injectable
        `clock` is for the rate limit and cache, which tests drive without waiting.
        """
        path = _repository_of(url)
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > self._max_body:
                raise RegistryError(
                    f"registry {host}: the answer for {path} is larger than {self._max_body} bytes; cut off",
                    hint="raise spec.registryLimits.maxResponseSize if the registry is trusted",
                )
            if time.monotonic() - started > self._deadline:
                raise self._too_slow(host, url)
        return bytes(body)

    def _too_slow(self, host: str, url: str) -> RegistryError:
        return RegistryError(
            f"registry {host}: the answer for {_repository_of(url)} took longer than {self._deadline:g} s; cut off",
            hint="retry later; raise spec.registryLimits.requestTimeout for a slow registry",
        )

    def _trace(self, event: str, info: Mapping[str, object]) -> None:
        if event == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if isinstance(stream, httpcore.NetworkStream) else None
            if isinstance(sock, socket.socket):
                with self._lock:
                    self._sockets.add(sock)

    def _cut_connections(self, cut: threading.Event) -> None:
        """Shut every connection of this client down: the late request's is among them.

        httpcore does not say which pooled connection a request got, so the others go too: a request of
        another thread cut this way fails as unreachable and is retried, an idle connection is opened again.
        """
        cut.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        delay = float(self._backoff * 2 ** (state.attempt_number - 1))
        if isinstance(error, _Retry) and error.retry_after is not None:
            if error.retry_after > self._max_wait:
                raise RegistryError(
                    f"registry {error.host}: asks to wait {error.retry_after:.0f} s; giving up for now",
                    hint="retry later",
                )
            delay = error.retry_after
        return min(delay, self._max_wait)

    def _count_retry(self, state: tenacity.RetryCallState) -> None:
        with self._lock:
            self.retries += 1

    def _slot(self, host: str) -> threading.BoundedSemaphore:
        """The semaphore that keeps at most `concurrency` requests to `host` in flight."""
        with self._lock:
            slot = self._slots.get(host)
            if slot is None:
                slot = self._slots[host] = threading.BoundedSemaphore(self._concurrency)
            return slot

    def _throttle(self, host: str) -> None:
        """Take a token of `host`'s bucket (`burst` tokens, refilled at `rate_limit` a second), waiting if none."""
        if not self._rate:
            return
        with self._lock:
            now = self._clock()
            tokens, stamp = self._buckets.get(host, (self._burst, now))
            # A token taken ahead of time drives the count below 0: later callers wait their turn behind it.
            tokens = min(self._burst, tokens + (now - stamp) * self._rate) - 1
            self._buckets[host] = (tokens, now)
        if tokens < 0:
            self._sleep(-tokens / self._rate)

    # -- tag facts: manifest digests, image creation times, cosign signatures ---------------------------

    def inspect_tag(self, image: str, tag: str, *, created: bool = False, signatures: bool = False) -> TagFacts:
        """`gitbot.ports.TagInspector`: the manifest digest `tag` serves now (one HEAD, revalidated by ETag),
        and on request the image's creation time and the cosign signatures of that digest.

        What a digest names never changes, so a creation time is fetched once per digest for the life of
        this client; the signature tag is revalidated by ETag, as a signature may be added later.
        """
        host, path = locate(image)
        digest = self._manifest_digest(host, path, tag)
        when = self._created_at(host, path, digest) if created else None
        found = self._cosign_signatures(host, path, digest) if signatures else ()
        return TagFacts(digest, when, found)

    def _manifest_url(self, host: str, path: str, reference: str) -> str:
        return f"{self._scheme(host)}://{host}/v2/{path}/manifests/{reference}"

    def _manifest_digest(self, host: str, path: str, tag: str) -> str:
        key = (host, path, tag)
        known = self._tag_digests.get(key)
        extra = {"Accept": _MANIFEST_ACCEPT}
        if known is not None:
            extra["If-None-Match"] = known[1]
        answer = self._get(host, path, self._manifest_url(host, path, tag), extra, method="HEAD")
        if answer.status == 304 and known is not None:
            with self._lock:
                self.cache_hits += 1
            return known[0]
        self._check_manifest(answer, host, path, tag)
        digest = str(answer.headers.get("Docker-Content-Digest", ""))
        if not _DIGEST.fullmatch(digest):
            raise RegistryError(f"registry {host}: {path}:{tag} has no valid Docker-Content-Digest header")
        etag = answer.headers.get("ETag")
        if etag:
            _bounded(self._tag_digests)[key] = (digest, etag)
        return digest

    def _check_manifest(self, answer: _Answer, host: str, path: str, reference: str) -> None:
        if answer.status == 404:
            raise RegistryError(f"registry {host}: {path}:{reference} not found (404)")
        if answer.status != 200:
            self._check(answer, host, path)
            raise RegistryError(f"registry {host}: manifest of {path}:{reference} answered HTTP {answer.status}")

    def _json(self, host: str, path: str, url: str, what: str, accept: str) -> dict[str, object]:
        answer = self._get(host, path, url, {"Accept": accept})
        answer = self._follow_blob_redirect(host, answer)
        if answer.status != 200:
            self._check_manifest(answer, host, path, what)
        return _json_object(answer.body, host, f"{path} {what}")

    def _blob(self, host: str, path: str, digest: str) -> bytes:
        """A blob's bytes, checked against its digest (a registry cannot swap a config or a payload)."""
        url = f"{self._scheme(host)}://{host}/v2/{path}/blobs/{digest}"
        answer = self._follow_blob_redirect(host, self._get(host, path, url, {}))
        if answer.status != 200:
            self._check_manifest(answer, host, path, digest)
        if "sha256:" + hashlib.sha256(answer.body).hexdigest() != digest:
            raise RegistryError(f"registry {host}: blob {digest[:19]} of {path} does not match its digest")
        return answer.body

    def _follow_blob_redirect(self, host: str, answer: _Answer) -> _Answer:
        """Registries serve blobs from storage elsewhere: follow one redirect, without the registry's
        credentials, and only to HTTPS (or to loopback)."""
        location = answer.headers.get("Location")
        if answer.status not in (301, 302, 303, 307, 308) or not location:
            return answer
        target = urljoin(answer.url, location)
        split = urlsplit(target)
        if split.scheme != "https" and not (split.scheme == "http" and is_loopback(split.netloc)):
            raise RegistryError(f"registry {host}: a blob redirects to plain HTTP; refused")
        return self._send(split.netloc, target, {})

    def _created_at(self, host: str, path: str, digest: str) -> datetime | None:
        if digest in self._created:
            with self._lock:
                self.cache_hits += 1
            return self._created[digest]
        manifest = self._json(host, path, self._manifest_url(host, path, digest), digest, _MANIFEST_ACCEPT)
        entries = manifest.get("manifests")
        if isinstance(entries, list):
            chosen = _platform_manifest(entries)
            if chosen is None:
                raise RegistryError(f"registry {host}: index {digest[:19]} of {path} lists no image manifest")
            manifest = self._json(host, path, self._manifest_url(host, path, chosen), chosen, _MANIFEST_ACCEPT)
        config = manifest.get("config")
        config_digest = config.get("digest") if isinstance(config, dict) else None
        if not isinstance(config_digest, str) or not _DIGEST.fullmatch(config_digest):
            raise RegistryError(f"registry {host}: manifest {digest[:19]} of {path} names no config blob")
        document = _json_object(self._blob(host, path, config_digest), host, f"{path} config")
        when = _parse_created(document.get("created"))
        _bounded(self._created)[digest] = when
        return when

    def _cosign_signatures(self, host: str, path: str, digest: str) -> tuple[CosignSignature, ...]:
        tag = digest.replace(":", "-") + ".sig"
        key = (host, path, tag)
        known = self._signature_sets.get(key)
        extra = {"Accept": _MANIFEST_ACCEPT}
        if known is not None:
            extra["If-None-Match"] = known[0]
        answer = self._get(host, path, self._manifest_url(host, path, tag), extra)
        if answer.status == 304 and known is not None:
            with self._lock:
                self.cache_hits += 1
            return known[1]
        if answer.status == 404:
            return ()
        self._check_manifest(answer, host, path, tag)
        layers = _json_object(answer.body, host, f"{path}:{tag}").get("layers")
        found: list[CosignSignature] = []
        for layer in layers if isinstance(layers, list) else []:
            annotations = layer.get("annotations") if isinstance(layer, dict) else None
            signature = annotations.get(_COSIGN_SIGNATURE) if isinstance(annotations, dict) else None
            blob = layer.get("digest") if isinstance(layer, dict) else None
            if isinstance(signature, str) and isinstance(blob, str) and _DIGEST.fullmatch(blob):
                found.append(CosignSignature(self._payload(host, path, blob), signature))
        etag = answer.headers.get("ETag")
        if etag:
            _bounded(self._signature_sets)[key] = (etag, tuple(found))
        return tuple(found)

    def _payload(self, host: str, path: str, digest: str) -> bytes:
        payload = self._payloads.get(digest)
        if payload is None:
            payload = _bounded(self._payloads)[digest] = self._blob(host, path, digest)
        return payload


class _TransportPerScheme(httpx.BaseTransport):
    """httpx's own transport, one per URL scheme, each made when first used: the HTTPS one loads the trusted
    certificates (~25 ms of a one-shot cycle), which a registry reached over plain HTTP never needs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[str, httpx.HTTPTransport] = {}

    def _for(self, scheme: str) -> httpx.HTTPTransport:
        with self._lock:
            transport = self._made.get(scheme)
            if transport is None:
                # Plain HTTP never opens TLS: no certificates to load for it.
                verify = scheme == "https"
                transport = httpx.HTTPTransport(verify=verify, trust_env=False)
                self._made[scheme] = transport
            return transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._for(request.url.scheme).handle_request(request)

    def close(self) -> None:
        with self._lock:
            made, self._made = list(self._made.values()), {}
        for transport in made:
            transport.close()


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error under a transport failure (httpx wraps httpcore, which wraps the `ssl` error), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _tls_error(host: str, error: ssl.SSLError) -> RegistryTlsError:
    """A failed handshake is no outage: the same request fails the same way, so it is said at once, not retried."""
    reason = error.reason or type(error).__name__
    if isinstance(error, ssl.SSLCertVerificationError):
        return RegistryTlsError(
            f"registry {host}: TLS handshake failed: its certificate is not trusted ({error.verify_message})",
            hint="give the registry a certificate this machine trusts",
        )
    return RegistryTlsError(
        f"registry {host}: TLS handshake failed ({reason}); it seems to serve plain HTTP, which a policy allows "
        f"with registries: [{{host: {host}, insecure: true}}]",
        hint=f"add registries: [{{host: {host}, insecure: true}}] to the policy (gitbot tags: --insecure-host {host})",
    )


def _repository_of(url: str) -> str:
    """The repository path of a `/v2/<path>/tags/list` URL, or the URL's host and path for other requests."""
    split = urlsplit(url)
    path = split.path
    if path.startswith("/v2/") and path.endswith("/tags/list"):
        return path[len("/v2/") : -len("/tags/list")]
    return f"{split.netloc}{path}"


def _basic(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return f"Basic {base64.b64encode(raw).decode('ascii')}"


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """(`bearer` | `basic` | ``, parameters) of a `WWW-Authenticate` header."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE_PARAM_RE.finditer(rest)
    }
    return scheme.lower(), params


def _next_link(values: list[str]) -> str | None:
    for value in values:
        for match in _LINK_RE.finditer(value):
            rels = re.findall(r'rel\s*=\s*"?([^";]+)"?', match.group(2))
            if any("next" in rel.split() for rel in rels):
                return match.group(1)
    return None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds form); None when absent or a date."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


_MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_COSIGN_SIGNATURE = "dev.cosignproject.cosign/signature"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_CREATED_FRACTION = re.compile(r"(\.\d{6})\d+")
# Entries kept per cache of tag facts; past it the cache starts again (they are cheap to ask for again).
_CACHE_ENTRIES = 10_000


def _bounded(cache: dict[_K, _V]) -> dict[_K, _V]:
    if len(cache) >= _CACHE_ENTRIES:
        cache.clear()
    return cache


def _json_object(body: bytes, host: str, what: str) -> dict[str, object]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"registry {host}: {what} is not JSON") from exc
    except RecursionError:
        raise RegistryError(f"registry {host}: {what} is nested too deeply") from None
    if not isinstance(document, dict):
        raise RegistryError(f"registry {host}: {what} is not a JSON object")
    return document


def _platform_manifest(entries: list[object]) -> str | None:
    """The digest an index lists for linux/amd64, else its first image (attestations, `unknown`, skipped)."""
    images: list[tuple[bool, str]] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
            continue
        platform = entry.get("platform") if isinstance(entry.get("platform"), dict) else {}
        assert isinstance(platform, dict)
        if platform.get("os") == "unknown":
            continue
        images.append((platform.get("os") == "linux" and platform.get("architecture") == "amd64", entry["digest"]))
    preferred = [digest for best, digest in images if best] or [digest for _best, digest in images]
    return preferred[0] if preferred else None


def _parse_created(value: object) -> datetime | None:
    """An image config's `created` (RFC 3339, nanoseconds allowed) as an aware time; None when absent."""
    if not isinstance(value, str) or not value:
        return None
    text = _CREATED_FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00").replace("z", "+00:00")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
