"""Independent images are looked up side by side: ten images on one host are ten requests in flight at once
(one round trip, no sleeping), never more than the host's `concurrency`, and a 429's `Retry-After` is still
waited out. Counted by a loopback registry that records how many requests it holds at once."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gitbot.adapters.registry import OciRegistry
from gitbot.commands.compose import SharedTagLists, build_registry
from gitbot.commands.runner import CountingRegistry
from gitbot.config import Policy, load_policy
from gitbot.gather import list_image_tags
from tests.support.registry import LoopbackServer, QuietHandler, serve

pytestmark = pytest.mark.real


@dataclass
class Recorder:
    """What the registry saw: requests in flight now and at most, and how many were sent."""

    meet: int = 10
    busy_once: bool = False
    in_flight: int = 0
    most: int = 0
    sent: int = 0
    refused: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    barrier: threading.Barrier = field(init=False)

    def __post_init__(self) -> None:
        # Requests wait here until `meet` of them are in flight together (or a few seconds passed): requests
        # sent one after another never meet, and the count says so.
        self.barrier = threading.Barrier(self.meet, timeout=2)


def concurrency_registry(recorder: Recorder) -> LoopbackServer:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            name = self.path.split("?")[0].removeprefix("/v2/").removesuffix("/tags/list")
            with recorder.lock:
                recorder.sent += 1
                first = name not in recorder.refused
                if recorder.busy_once and first:
                    recorder.refused.add(name)
                    self.send_json(429, {"errors": []}, {"Retry-After": "2"})
                    return
                recorder.in_flight += 1
                recorder.most = max(recorder.most, recorder.in_flight)
            with contextlib.suppress(threading.BrokenBarrierError):
                recorder.barrier.wait()
            with recorder.lock:
                recorder.in_flight -= 1
            self.send_json(200, {"name": name, "tags": ["1.0.0", "1.0.1"]})

    return serve(Handler)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(recorder: Recorder) -> Iterator[LoopbackServer]:
    running = concurrency_registry(recorder)
    yield running
    running.stop()


def ten_images(tmp_path: Path, host: str, limits: str = "") -> Policy:
    images = "".join(
        f"    - {{name: app{i}, repository: {host}/acme/app{i}, filter: '1.0.*', "
        f"targets: [{{resource: Deployment/apps/app{i}}}]}}\n"
        for i in range(10)
    )
    path = tmp_path / "p.yaml"
    path.write_text(
        "apiVersion: gitbot.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\n"
        "spec:\n  git: {url: 'http://127.0.0.1:9/c.git'}\n"
        f"{limits}  images:\n{images}",
        encoding="utf-8",
    )
    return load_policy(path)


def host_of(server: LoopbackServer) -> str:
    return server.url.removeprefix("http://")


def test_ten_images_on_one_host_are_requested_at_once_without_sleeping(
    server: LoopbackServer, recorder: Recorder, tmp_path: Path
) -> None:
    policy = ten_images(tmp_path, host_of(server))
    sleeps: list[float] = []
    # The policy's defaults, with the sleeps recorded instead of slept.
    with OciRegistry(
        rate_limit=policy.spec.registry_limits.requests_per_second,
        concurrency=policy.spec.registry_limits.concurrency,
        sleep=sleeps.append,
    ) as client:
        tags, failures = list_image_tags(policy, client)
    assert failures == ()
    assert sorted(tags) == [f"app{i}" for i in range(10)]
    assert recorder.sent == 10
    assert recorder.most == 10
    assert sleeps == []


def test_no_more_than_the_hosts_concurrency_is_in_flight(tmp_path: Path) -> None:
    recorder = Recorder(meet=3)
    server = concurrency_registry(recorder)
    try:
        policy = ten_images(tmp_path, host_of(server), "  registryLimits: {concurrency: 3, requestsPerSecond: 1000}\n")
        with build_registry(policy, {}) as client:
            tags, failures = list_image_tags(policy, client)
    finally:
        server.stop()
    assert failures == () and len(tags) == 10
    assert recorder.most == 3


def test_a_429_is_waited_out_as_the_registry_asks(tmp_path: Path) -> None:
    recorder = Recorder(busy_once=True)
    server = concurrency_registry(recorder)
    sleeps: list[float] = []
    try:
        policy = ten_images(tmp_path, host_of(server))
        with OciRegistry(sleep=sleeps.append) as client:
            tags, failures = list_image_tags(policy, client)
    finally:
        server.stop()
    assert failures == () and len(tags) == 10
    assert recorder.sent == 20
    # Each image waited what its 429 asked (besides any pacing of the retries by the rate limit).
    assert sleeps.count(2.0) == 10
    assert recorder.most == 10


def test_shared_tag_lists_of_many_images_on_one_host_go_out_together(
    server: LoopbackServer, recorder: Recorder, tmp_path: Path
) -> None:
    policy = ten_images(tmp_path, host_of(server))
    shared = SharedTagLists(lambda: OciRegistry(cache_ttl=60))
    try:
        tags, failures = list_image_tags(policy, shared)
        again, _ = list_image_tags(policy, shared)
    finally:
        shared.close()
    assert failures == () and again == tags
    assert recorder.sent == 10
    assert recorder.most == 10


def test_the_rate_limit_lets_a_burst_through_and_paces_the_rest() -> None:
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    registry = OciRegistry(rate_limit=10, concurrency=4, clock=lambda: now[0], sleep=sleep)
    for _ in range(6):
        registry._throttle("r.example.test")
    registry.close()
    assert sleeps == pytest.approx([0.1, 0.1])


def test_lookups_side_by_side_are_counted_once_each(server: LoopbackServer, recorder: Recorder, tmp_path: Path) -> None:
    policy = ten_images(tmp_path, host_of(server))
    counted: list[tuple[str, str]] = []
    with OciRegistry() as client:
        tags, _failures = list_image_tags(policy, CountingRegistry(client, lambda *call: counted.append(call)))
    assert len(tags) == 10 and recorder.most == 10
    # Each thread counts what its own lookup sent, not what the others sent meanwhile.
    assert counted == [("registry", "ok")] * 10
