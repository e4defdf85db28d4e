"""The OCI registry client against real `docker-registry` servers, a paging proxy and a hostile server."""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gitbot.adapters.registry import Credentials, EnvironmentCredentials, OciRegistry
from gitbot.errors import AuthError, RegistryError
from gitbot.ports import Registry
from gitbot.versioning import parse_filter, select
from tests.contract.registry.conftest import INVALID_TAGS, MANY_TAGS, PODINFO_TAGS, USERS, Hostile, Registries
from tests.support.registry import OverloadRegistry, free_port, push_tags

pytestmark = pytest.mark.real


@dataclass
class FakeTime:
    """A monotonic clock that only moves when the client sleeps (or the test advances it)."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def client(**options: object) -> OciRegistry:
    time = options.pop("time", None) or FakeTime()
    assert isinstance(time, FakeTime)
    return OciRegistry(clock=time.clock, sleep=time.sleep, **options)  # type: ignore[arg-type]


def alice(host: str) -> Credentials | None:
    return Credentials("alice", USERS["alice"])


def test_lists_every_pushed_tag_anonymously(registries: Registries) -> None:
    with client() as registry:
        tags = registry.list_tags(f"{registries.anonymous.host}/stefanprodan/podinfo")
        assert sorted(tags) == sorted(PODINFO_TAGS)
        assert registry.requests == {registries.anonymous.host: 1}


def test_selection_over_a_real_listing(registries: Registries) -> None:
    with client() as registry:
        tags = registry.list_tags(f"{registries.anonymous.host}/stefanprodan/podinfo:0.1.0")
    assert select(tags, parse_filter("0.1.*")).selected == "0.1.12"
    assert select(tags, parse_filter("semver:~0.2")).selected == "v0.2.4"
    assert select(tags, parse_filter("semver:^1.0")).selected == "1.10"


def test_unknown_repository_is_a_registry_error(registries: Registries) -> None:
    with client() as registry, pytest.raises(RegistryError) as info:
        registry.list_tags(f"{registries.anonymous.host}/no/such-repo")
    assert not isinstance(info.value, AuthError)
    assert "no/such-repo not found" in info.value.one_line()


def test_basic_auth_with_credentials(registries: Registries) -> None:
    with client(credentials=alice) as registry:
        image = f"{registries.basic.host}/private/app"
        assert sorted(registry.list_tags(image)) == ["1.0.0", "1.1.0", "2.0.0-rc.1"]
        first = registry.requests[registries.basic.host]
        registry.clear_cache()
        registry.list_tags(image)
        # Once the registry asked for Basic auth, later requests send it up front (no second 401).
        assert registry.requests[registries.basic.host] == first + 1


def test_basic_auth_refused_without_or_with_wrong_credentials(registries: Registries) -> None:
    image = f"{registries.basic.host}/private/app"
    with client() as registry, pytest.raises(AuthError) as info:
        registry.list_tags(image)
    assert "refused (401)" in info.value.one_line()
    wrong = "not-the-password-5521"
    refused = client(credentials=lambda host: Credentials("alice", wrong))
    with refused, pytest.raises(AuthError) as info:
        refused.list_tags(image)
    assert wrong not in info.value.one_line() and wrong not in (info.value.hint or "")


def test_bearer_token_flow(registries: Registries) -> None:
    before = registries.token_server.requests
    with client(credentials=alice) as registry:
        image = f"{registries.token.host}/secure/app"
        assert sorted(registry.list_tags(image)) == ["3.0.0", "3.1.0", "3.1.1"]
        token_host = registries.token_server.realm.split("/")[2]
        assert registry.requests == {registries.token.host: 2, token_host: 1}
        registry.clear_cache()
        registry.list_tags(image)
        # The token is reused while it is valid.
        assert registry.requests == {registries.token.host: 3, token_host: 1}
    assert registries.token_server.requests == before + 1


def test_a_token_host_is_sent_a_token_up_front_for_each_new_image_and_after_expiry(registries: Registries) -> None:
    other = "secure/second"
    push_tags(
        registries.token.url,
        other,
        ["4.0.0"],
        token=registries.token_server.issue("alice", [f"repository:{other}:pull,push"]),
    )
    time = FakeTime()
    token_host = registries.token_server.realm.split("/")[2]
    with client(credentials=alice, time=time) as registry:
        registry.list_tags(f"{registries.token.host}/secure/app")
        assert registry.requests == {registries.token.host: 2, token_host: 1}  # challenged once
        # The host's challenge is known: the next image's token is asked for before its listing, so the
        # listing goes out once, authorised, instead of being refused first.
        assert registry.list_tags(f"{registries.token.host}/{other}") == ["4.0.0"]
        assert registry.requests == {registries.token.host: 3, token_host: 2}
        time.now += 3600  # every token expired, as between the cycles of a daemon
        registry.clear_cache()
        registry.list_tags(f"{registries.token.host}/secure/app")
        assert registry.requests == {registries.token.host: 4, token_host: 3}


def test_bearer_token_refused(registries: Registries) -> None:
    wrong = "guessed-password-0042"
    refused = client(credentials=lambda host: Credentials("alice", wrong))
    with refused, pytest.raises(AuthError) as info:
        refused.list_tags(f"{registries.token.host}/secure/app")
    assert "token server" in info.value.one_line()
    assert wrong not in info.value.one_line()
    with client() as registry, pytest.raises(AuthError):
        registry.list_tags(f"{registries.token.host}/secure/app")


def test_credentials_from_docker_config(registries: Registries, tmp_path: Path) -> None:
    auth = base64.b64encode(f"alice:{USERS['alice']}".encode()).decode()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {f"http://{registries.basic.host}": {"auth": auth}}}), encoding="utf-8")
    with client(credentials=EnvironmentCredentials(environ={}, config_path=config)) as registry:
        assert "1.1.0" in registry.list_tags(f"{registries.basic.host}/private/app")


def test_pagination_through_link_headers(registries: Registries) -> None:
    before = registries.proxy.requests
    pages: list[tuple[str, int, int]] = []
    image = f"{registries.proxy.host}/team/many"
    with client(page_size=40, on_page=lambda *page: pages.append(page)) as registry:
        tags = registry.list_tags(image)
        assert pages == [(image, 1, 40), (image, 2, 80), (image, 3, 120), (image, 4, 150)]
        assert sorted(tags) == sorted(MANY_TAGS)
        assert len(tags) == len(set(tags)) == 150
        assert registry.requests == {registries.proxy.host: 4}
    assert registries.proxy.requests == before + 4


def test_page_cap(registries: Registries) -> None:
    with (
        client(page_size=40, max_pages=3) as registry,
        pytest.raises(RegistryError, match="more than 3 pages"),
    ):
        registry.list_tags(f"{registries.proxy.host}/team/many")


def test_cache_ttl_avoids_listing_twice(registries: Registries) -> None:
    time = FakeTime()
    with client(time=time, cache_ttl=60) as registry:
        image = f"{registries.anonymous.host}/team/many"
        first = registry.list_tags(image)
        assert registry.list_tags(image) == first
        assert registry.requests == {registries.anonymous.host: 1}
        assert registry.cache_hits == 1
        time.now += 61
        assert sorted(registry.list_tags(image)) == sorted(first)
        assert registry.requests == {registries.anonymous.host: 2}


def test_unreachable_registry(registries: Registries) -> None:
    time = FakeTime()
    port = free_port()
    with (
        client(time=time, max_attempts=3, backoff=0.5) as registry,
        pytest.raises(RegistryError, match=r"cannot reach 127\.0\.0\.1:\d+ \(ConnectError\), 3 attempt") as info,
    ):
        registry.list_tags(f"127.0.0.1:{port}/app")
    assert time.sleeps == [0.5, 1.0]
    assert info.value.retryable


# -- hostile answers -------------------------------------------------------------------------------


def test_invalid_tags_are_returned_raw_and_ignored_by_selection(hostile: Hostile) -> None:
    with client() as registry:
        tags = registry.list_tags(f"{hostile.host}/hostile/invalid")
    assert tags == INVALID_TAGS
    result = select(tags, parse_filter("*"))
    assert result.candidates == ("1.0.2", "1.0.0")
    assert len(result.ignored) == 6
    assert "1.0.1\n" in result.ignored and "x" * 200 in result.ignored


def test_looping_link_is_detected(hostile: Hostile) -> None:
    with client() as registry, pytest.raises(RegistryError, match="pages loop") as info:
        registry.list_tags(f"{hostile.host}/hostile/loop")
    assert registry.requests == {hostile.host: 3}
    assert "\n" not in info.value.one_line()


def test_link_to_another_host_is_refused(hostile: Hostile) -> None:
    with client() as registry, pytest.raises(RegistryError, match="links to another host"):
        registry.list_tags(f"{hostile.host}/hostile/offsite")


def test_429_then_success_honours_retry_after(hostile: Hostile) -> None:
    time = FakeTime()
    with client(time=time, rate_limit=None) as registry:
        assert registry.list_tags(f"{hostile.host}/hostile/ratelimit-a") == ["1.0.0", "1.1.0"]
        assert time.sleeps == [2.0]
        assert registry.retries == 1
        assert registry.requests == {hostile.host: 2}


def test_retry_after_too_long_fails_at_once(hostile: Hostile) -> None:
    time = FakeTime()
    with (
        client(time=time, max_wait=60) as registry,
        pytest.raises(RegistryError, match=r"127\.0\.0\.1:\d+: asks to wait 3600 s"),
    ):
        registry.list_tags(f"{hostile.host}/hostile/longwait-a")
    assert time.sleeps == []


def test_5xx_retried_with_backoff_then_success(hostile: Hostile) -> None:
    time = FakeTime()
    with client(time=time, rate_limit=None, backoff=0.25) as registry:
        assert registry.list_tags(f"{hostile.host}/hostile/flaky-a") == ["2.0.0"]
    assert time.sleeps == [0.25, 0.5]


def test_persistent_500_is_a_registry_error(hostile: Hostile) -> None:
    time = FakeTime()
    with (
        client(time=time, max_attempts=3) as registry,
        pytest.raises(RegistryError, match="HTTP 500, 3 attempt"),
    ):
        registry.list_tags(f"{hostile.host}/hostile/down")
    assert registry.requests == {hostile.host: 3}


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("garbage", "is not JSON"),
        ("wrongshape", "not a list of strings"),
        ("numbers", "not a list of strings"),
    ],
)
def test_garbage_answers(hostile: Hostile, case: str, fragment: str) -> None:
    with client() as registry, pytest.raises(RegistryError, match=fragment):
        registry.list_tags(f"{hostile.host}/hostile/{case}")


def test_null_tag_list_is_empty(hostile: Hostile) -> None:
    with client() as registry:
        assert registry.list_tags(f"{hostile.host}/hostile/null") == []


def test_conditional_request_after_ttl(hostile: Hostile) -> None:
    time = FakeTime()
    with client(time=time, cache_ttl=30) as registry:
        image = f"{hostile.host}/hostile/etag-a"
        assert registry.list_tags(image) == ["4.0.0", "4.1.0"]
        time.now += 31
        assert registry.list_tags(image) == ["4.0.0", "4.1.0"]
        assert registry.requests == {hostile.host: 2}
        assert registry.cache_hits == 1
        # The 304 renewed the entry: no request within the next TTL.
        assert registry.list_tags(image) == ["4.0.0", "4.1.0"]
        assert registry.requests == {hostile.host: 2}


def test_rate_limit_spaces_requests_per_host(hostile: Hostile) -> None:
    time = FakeTime()
    with client(time=time, rate_limit=4, burst=1) as registry:
        for name in ("etag-r1", "etag-r2", "etag-r3"):
            registry.list_tags(f"{hostile.host}/hostile/{name}")
    assert time.sleeps == [0.25, 0.25]


def test_no_secret_in_debug_logs(registries: Registries, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with client(credentials=alice) as registry:
        registry.list_tags(f"{registries.basic.host}/private/app")
        registry.list_tags(f"{registries.token.host}/secure/app")
    assert "private/app" in caplog.text
    encoded = base64.b64encode(f"alice:{USERS['alice']}".encode()).decode()
    # Every JSON Web Token starts with the base64 of `{"`, so no token reached a log record either.
    for secret in (USERS["alice"], encoded, "eyJ"):
        assert secret not in caplog.text


def test_is_the_registry_port() -> None:
    adapter = OciRegistry()
    port: Registry = adapter
    assert callable(port.list_tags)
    adapter.close()


# -- answers beyond the client's limits ------------------------------------------------------------


def test_an_oversize_answer_is_cut_off_while_streaming(overload: OverloadRegistry) -> None:
    with client(max_response_bytes=1024 * 1024) as registry, pytest.raises(RegistryError) as caught:
        registry.list_tags(f"{overload.host}/huge/app")
    assert caught.value.one_line() == (
        f"registry {overload.host}: the answer for huge/app is larger than 1048576 bytes; cut off"
    )
    # Read up to the cap and hung up on: not the whole 64 MiB the server meant to send.
    assert overload.sent["huge"] < 8 * 1024 * 1024


def test_too_many_tags_in_one_answer_is_an_error_for_that_image(overload: OverloadRegistry) -> None:
    with client(max_tags=999) as registry, pytest.raises(RegistryError) as caught:
        registry.list_tags(f"{overload.host}/many/app")
    assert f"registry {overload.host}: many/app has more than 999 tags" in caught.value.one_line()
    with client(max_tags=1000) as registry:
        assert len(registry.list_tags(f"{overload.host}/many/app")) == 1000


def test_too_many_tags_over_pages_stops_at_the_cap(overload: OverloadRegistry) -> None:
    with client(max_tags=2500, max_pages=100) as registry, pytest.raises(RegistryError, match="more than 2500 tags"):
        registry.list_tags(f"{overload.host}/paged/app")
    # Three pages of 1,000 pass the cap; the fourth is never asked for.
    assert registry.requests == {overload.host: 3}


def test_a_dripping_answer_is_cut_by_the_request_deadline(overload: OverloadRegistry) -> None:
    with client(request_deadline=0.3, timeout=5) as registry, pytest.raises(RegistryError) as caught:
        registry.list_tags(f"{overload.host}/drip/app")
    assert caught.value.one_line() == (
        f"registry {overload.host}: the answer for drip/app took longer than 0.3 s; cut off"
    )
    # Cut once, not retried: a drip would hold the cycle for every attempt.
    assert registry.requests == {overload.host: 1}
    assert overload.sent["drip"] < overload.drip_bytes


def test_deeply_nested_json_is_a_one_line_registry_error(overload: OverloadRegistry) -> None:
    with client() as registry, pytest.raises(RegistryError) as caught:
        registry.list_tags(f"{overload.host}/deep/app")
    assert caught.value.one_line() == f"registry {overload.host}: tag list of deep/app is nested too deeply"


def test_dripping_headers_are_cut_by_the_request_deadline(overload: OverloadRegistry) -> None:
    with client(request_deadline=0.3, timeout=5) as registry, pytest.raises(RegistryError) as caught:
        registry.list_tags(f"{overload.host}/headdrip/app")
    assert caught.value.one_line() == (
        f"registry {overload.host}: the answer for headdrip/app took longer than 0.3 s; cut off"
    )
    assert registry.requests == {overload.host: 1}
    assert overload.sent["headdrip"] < 100
