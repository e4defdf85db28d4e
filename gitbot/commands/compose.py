"""The composition root of the one-cycle commands: policy + environment -> adapters -> `Deps`.

The only place (besides the service) that builds adapters. Secrets are read here from the environment
variables a policy names, and passed straight to the adapter that needs them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gitbot.adapters.clock import SystemClock
from gitbot.adapters.gitrepo import GitWorkspace
from gitbot.adapters.registry import Credentials, EnvironmentCredentials, OciRegistry, locate
from gitbot.config import CanarySettings, Policy, secret_from_env
from gitbot.cycle import Deps
from gitbot.domain import Author, TagFacts
from gitbot.errors import ConfigError
from gitbot.logs import remember_secrets
from gitbot.manifests import ScanCache
from gitbot.ports import Checkout, Metrics, Workspace

if TYPE_CHECKING:
    # Imported where built: PyGithub, requests and prometheus-api-client load only for the policies that use them.
    from gitbot.adapters.github import GitHubForge
    from gitbot.adapters.prometheus import PrometheusMetrics

F = TypeVar("F", bound=Callable[..., Any])


def policy_option(func: F) -> F:
    return click.option("--policy", "policy_name", required=True, help="Policy name (or path to its file).")(func)


def policies_option(func: F) -> F:
    return click.option(
        "--policies",
        "policies_dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=Path("policies"),
        envvar="GITBOT_POLICIES",
        show_default=True,
        help="Directory of policy files.",
    )(func)


def _secret(env: Mapping[str, str], name: str | None, *, field: str) -> str | None:
    """The secret named `name`, without the line break a value read from a file often ends with.

    Sent as is, a trailing newline breaks the HTTP header the token goes into (and some libraries then quote
    the whole value in their error); no credential ends with one. Spaces are kept: a password may hold them.
    """
    value = secret_from_env(env, name, field=field)
    return value.strip("\r\n") if value is not None else None


def cache_root(env: Mapping[str, str]) -> Path:
    """Where clones are cached between cycles: $GITBOT_CACHE_DIR, else the user's cache directory."""
    if env.get("GITBOT_CACHE_DIR"):
        return Path(env["GITBOT_CACHE_DIR"])
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "gitbot"


class PolicyCredentials:
    """Registry credentials named by the policy's `registries`, then the environment and Docker config."""

    def __init__(self, policy: Policy, env: Mapping[str, str]) -> None:
        self.named: dict[str, Credentials] = {}
        for index, registry in enumerate(policy.spec.registries):
            field = f"spec.registries[{index}]"
            user = _secret(env, registry.username_env, field=f"{field}.usernameEnv")
            password = _secret(env, registry.password_env, field=f"{field}.passwordEnv")
            if user is not None and password is not None:
                self.named[registry.host] = Credentials(user, password)
        self._fallback = EnvironmentCredentials(env)

    def __call__(self, host: str) -> Credentials | None:
        return self.named.get(host) or self._fallback(host)


def build_registry(policy: Policy, env: Mapping[str, str], *, cache_ttl: float | None = None) -> OciRegistry:
    insecure = [r.host for r in policy.spec.registries if r.insecure]
    credentials = PolicyCredentials(policy, env)
    limits = policy.spec.registry_limits
    return OciRegistry(
        credentials=credentials,
        insecure_hosts=insecure,
        cache_ttl=OciRegistry.CACHE_TTL if cache_ttl is None else cache_ttl,
        max_response_bytes=limits.max_response_size,
        max_tags=limits.max_tags,
        request_deadline=limits.request_timeout.total_seconds(),
        concurrency=limits.concurrency,
        rate_limit=limits.requests_per_second,
    )


def build_workspace(policy: Policy, env: Mapping[str, str]) -> GitWorkspace:
    git = policy.spec.git
    token = _secret(env, git.token_env, field="spec.git.tokenEnv")
    return GitWorkspace(
        git.url,
        git.branch,
        cache_root(env) / "git",
        username=git.username,
        token=token,
        ssh_key_file=Path(git.ssh_key_file) if git.ssh_key_file else None,
        author=Author(git.author.name, git.author.email),
    )


class UnreadableWorkspace:
    """The `Workspace` of an earlier environment whose settings cannot be used here (its token is not set):
    every checkout fails with that error, so the gates on it hold and say why, and the cycle goes on."""

    def __init__(self, error: ConfigError) -> None:
        self.error = error

    @contextmanager
    def checkout(self) -> Iterator[Checkout]:
        raise self.error
        yield  # pragma: no cover - a generator, for contextmanager


def build_gate_workspaces(policy: Policy, env: Mapping[str, str]) -> dict[str, Workspace]:
    """A workspace for the branch of each earlier environment `policy`'s promotion gates name, by policy
    name; none for one on the policy's own repository and branch (its own checkout has that history)."""
    own = policy.spec.git
    workspaces: dict[str, Workspace] = {}
    for name, earlier in policy.upstream.items():
        git = earlier.spec.git
        if (git.url, git.branch) == (own.url, own.branch):
            continue
        try:
            remember_secrets(earlier, env)
            workspaces[name] = build_workspace(earlier, env)
        except ConfigError as exc:
            workspaces[name] = UnreadableWorkspace(exc)
    return workspaces


def build_forge(policy: Policy, env: Mapping[str, str], *, throttle: bool | None = None) -> GitHubForge | None:
    github = policy.spec.delivery.github
    if github is None:
        return None
    token = _secret(env, github.token_env, field="spec.delivery.github.tokenEnv")
    assert token is not None
    if throttle is None:
        # GitHub asks integrations to pause between writes; GITBOT_GITHUB_THROTTLE=0 turns the pauses off for
        # GitHub fakes and Enterprise servers without that limit.
        throttle = env.get("GITBOT_GITHUB_THROTTLE", "1").strip().lower() not in ("0", "false", "no", "off")
    from gitbot.adapters.github import GitHubForge

    return GitHubForge(github.repository, token, base_url=github.api_url, throttle=throttle)


def metrics_factory(policy: Policy, env: Mapping[str, str]) -> Callable[[CanarySettings], Metrics]:
    """One Prometheus client per URL and token the policy's canaries name, made when first needed."""
    # Keyed by the token's variable too: two canaries may reach one server with different credentials.
    clients: dict[tuple[str, str | None], PrometheusMetrics] = {}

    def for_canary(canary: CanarySettings) -> Metrics:
        settings = canary.analysis.prometheus
        key = (settings.url, settings.token_env)
        if key not in clients:
            index = next(i for i, c in enumerate(policy.spec.canaries) if c.name == canary.name)
            token = _secret(env, settings.token_env, field=f"spec.canaries[{index}].analysis.prometheus.tokenEnv")
            from gitbot.adapters.prometheus import PrometheusMetrics

            clients[key] = PrometheusMetrics(settings.url, token=token)
        return clients[key]

    return for_canary


def build_deps(
    policy: Policy,
    *,
    need_forge: bool,
    env: Mapping[str, str] | None = None,
    throttle: bool | None = None,
    registry_cache_ttl: float | None = None,
) -> Deps:
    """The adapters of `policy`. `throttle` False drops GitHub's pauses (None: $GITBOT_GITHUB_THROTTLE);
    `registry_cache_ttl` overrides how long tag lists are reused (seconds)."""
    environ = dict(os.environ if env is None else env)
    # Before any adapter sees a secret, so that every error from here on can be masked.
    remember_secrets(policy, environ)
    forge = (
        build_forge(policy, environ, throttle=throttle)
        if need_forge and policy.spec.delivery.mode == "pull-request"
        else None
    )
    return Deps(
        workspace=build_workspace(policy, environ),
        registry=build_registry(policy, environ, cache_ttl=registry_cache_ttl),
        clock=SystemClock(),
        forge=forge,
        metrics=metrics_factory(policy, environ) if policy.spec.canaries else None,
        log=lambda message: click.echo(f"gitbot: {message}", err=True),
        # Per policy: cycles of one policy never overlap, so its cache file has one writer.
        scan_cache=ScanCache(cache_root(environ) / "scan" / policy.name),
        gates=build_gate_workspaces(policy, environ),
    )


# A shared client stores every list it fetches (a view's window decides whether it is fresh), for this long
# when no window is given.
_SHARED_TTL = OciRegistry.CACHE_TTL


class _HostClients:
    """What every view of one `SharedTagLists` shares: a client per host, a lock per image, the counts."""

    def __init__(self, make: Callable[[], OciRegistry]) -> None:
        self.make = make
        self.hosts: dict[str, OciRegistry] = {}
        self.images: dict[tuple[str, str], threading.Lock] = {}
        self.views: dict[float | None, SharedTagLists] = {}
        self.guard = threading.Lock()
        self.sent = threading.local()


class SharedTagLists:
    """A `Registry` for the cycles of many policies running side by side in one process.

    One `OciRegistry` per registry host, which keeps that host's limits (requests at once, requests per
    second) across every thread. Lookups of different images run side by side up to those limits; a cycle
    that asks for a tag list another cycle is fetching waits for it and then reads it from the client's
    cache, so every policy that names an image shares one lookup per cache window. A slow or failing host
    holds up only the cycles that ask it. `requests` counts, per calling thread, the HTTP requests its own
    calls sent.

    `with_max_age(seconds)` is a view on the same clients and cache that takes a cached list as fresh for
    that long: policies with different intervals still share every lookup, each sees lists as new as its
    own window asks, and a list past it is revalidated (a 304 where the registry sends an ETag).
    """

    def __init__(self, make: Callable[[], OciRegistry], *, _clients: _HostClients | None = None) -> None:
        self._pool = _clients if _clients is not None else _HostClients(make)
        self._max_age: float | None = None

    def with_max_age(self, seconds: float | None) -> SharedTagLists:
        """The view of these clients that reuses a tag list for `seconds` (None: the clients' own TTL)."""
        pool = self._pool
        with pool.guard:
            view = pool.views.get(seconds)
            if view is None:
                view = SharedTagLists(pool.make, _clients=pool)
                view._max_age = seconds
                pool.views[seconds] = view
            return view

    def _client(self, host: str, path: str) -> tuple[threading.Lock, OciRegistry]:
        pool = self._pool
        with pool.guard:
            if host not in pool.hosts:
                pool.hosts[host] = pool.make()
            lock = pool.images.setdefault((host, path), threading.Lock())
            return lock, pool.hosts[host]

    def list_tags(self, image: str) -> list[str]:
        host, path = locate(image)
        lock, client = self._client(host, path)
        with lock:
            before = client.sent_by_this_thread
            try:
                return client.list_tags(image, max_age=self._max_age)
            finally:
                self._pool.sent.count = self._count() + client.sent_by_this_thread - before

    def _count(self) -> int:
        return int(getattr(self._pool.sent, "count", 0))

    @property
    def requests(self) -> dict[str, int]:
        """HTTP requests sent by this thread's calls so far (all hosts together)."""
        return {"sent": self._count()}

    @property
    def sent_by_this_thread(self) -> int:
        """HTTP requests sent by this thread's calls so far (all hosts together)."""
        return self._count()

    @property
    def clients(self) -> dict[str, OciRegistry]:
        """The client of each registry host asked so far."""
        with self._pool.guard:
            return dict(self._pool.hosts)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def inspect_tag(self, image: str, tag: str, *, created: bool = False, signatures: bool = False) -> TagFacts:
        """`TagInspector`: one tag's digest (and creation time, signatures) through the host's shared client."""
        host, path = locate(image)
        lock, client = self._client(host, path)
        with lock:
            before = client.sent_by_this_thread
            try:
                return client.inspect_tag(image, tag, created=created, signatures=signatures)
            finally:
                self._pool.sent.count = self._count() + client.sent_by_this_thread - before


class SharedAdapters:
    """`build_deps` for the daemon: policies with the same registry settings share one `SharedTagLists`.

    Settings are the policy's plain-HTTP hosts, its named registry credentials and its registry limits, so a
    policy never reads a tag list fetched with another policy's credentials. The tag cache window is not one
    of them: each policy gets a view with its own window on the shared clients (`with_max_age`).
    """

    def __init__(self) -> None:
        self.registries: dict[tuple[object, ...], SharedTagLists] = {}
        self._guard = threading.Lock()

    def registry_for(self, policy: Policy, env: Mapping[str, str], *, cache_ttl: float | None) -> SharedTagLists:
        credentials = PolicyCredentials(policy, env)
        key = (
            frozenset(r.host for r in policy.spec.registries if r.insecure),
            tuple(sorted((host, c.username, c.password) for host, c in credentials.named.items())),
            policy.spec.registry_limits.model_dump_json(),
        )
        with self._guard:
            if key not in self.registries:
                # The clients keep lists as long as the longest window asks; each view decides what is fresh.
                self.registries[key] = SharedTagLists(lambda: build_registry(policy, env, cache_ttl=_SHARED_TTL))
            return self.registries[key].with_max_age(cache_ttl)

    def build_deps(
        self,
        policy: Policy,
        *,
        need_forge: bool,
        env: Mapping[str, str] | None = None,
        throttle: bool | None = None,
        registry_cache_ttl: float | None = None,
    ) -> Deps:
        """`build_deps` with the registry shared among policies of the same registry settings."""
        environ = dict(os.environ if env is None else env)
        deps = build_deps(
            policy, need_forge=need_forge, env=environ, throttle=throttle, registry_cache_ttl=registry_cache_ttl
        )
        if isinstance(deps.registry, OciRegistry):
            deps.registry.close()  # replaced by the shared one: its connections would otherwise stay open
        return replace(deps, registry=self.registry_for(policy, environ, cache_ttl=registry_cache_ttl))
