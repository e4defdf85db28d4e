"""`OciRegistry.inspect_tag` against Debian's real `docker-registry`: manifest digests by HEAD (revalidated by
ETag), image creation times from config blobs (cached by digest), multi-platform indexes, and cosign
signatures stored under `sha256-<hex>.sig` (made here with `cryptography` in cosign's published format)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from gitbot.adapters.registry import OciRegistry
from gitbot.cli import main
from gitbot.commands.compose import SharedTagLists
from gitbot.commands.runner import CountingRegistry
from gitbot.errors import RegistryError
from gitbot.ports import TagInspector
from gitbot.signatures import judge, load_public_key
from tests.support.images import new_key, public_pem, push_image, push_index, sign
from tests.support.registry import QuietHandler, RunningRegistry, serve, start_registry

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    running = start_registry(tmp_path_factory.mktemp("facts"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def client(server: RunningRegistry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10, trust_env=False) as pusher:
        yield pusher


@pytest.fixture
def registry() -> Iterator[OciRegistry]:
    with OciRegistry(rate_limit=None, cache_ttl=0) as reg:
        yield reg


def sent(registry: OciRegistry) -> int:
    return sum(registry.requests.values())


def test_the_digest_is_the_one_the_registry_serves_and_is_revalidated_with_one_request(
    server: RunningRegistry, client: httpx.Client, registry: OciRegistry
) -> None:
    digest = push_image(client, "facts/digest", "1.0", created="2026-01-01T00:00:00Z")
    image = f"{server.host}/facts/digest"
    assert registry.inspect_tag(image, "1.0").digest == digest
    before, hits = sent(registry), registry.cache_hits
    assert registry.inspect_tag(image, "1.0").digest == digest
    assert sent(registry) - before == 1  # one conditional HEAD
    assert registry.cache_hits == hits + 1  # answered 304 Not Modified


def test_a_tag_pushed_again_serves_its_new_digest(
    server: RunningRegistry, client: httpx.Client, registry: OciRegistry
) -> None:
    image = f"{server.host}/facts/mutable"
    first = push_image(client, "facts/mutable", "latest", created="2026-01-01T00:00:00Z", content="one")
    assert registry.inspect_tag(image, "latest").digest == first
    second = push_image(client, "facts/mutable", "latest", created="2026-01-02T00:00:00Z", content="two")
    assert second != first
    assert registry.inspect_tag(image, "latest").digest == second


def test_creation_time_comes_from_the_config_and_is_fetched_once_per_digest(
    server: RunningRegistry, client: httpx.Client, registry: OciRegistry
) -> None:
    push_image(client, "facts/created", "1.0", created="2026-03-04T05:06:07.123456789Z")
    push_image(client, "facts/created", "2.0", created=None)
    image = f"{server.host}/facts/created"
    facts = registry.inspect_tag(image, "1.0", created=True)
    assert facts.created == datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    before = sent(registry)
    assert registry.inspect_tag(image, "1.0", created=True).created == facts.created
    assert sent(registry) - before == 1  # the HEAD only: a config blob never changes
    assert registry.inspect_tag(image, "2.0", created=True).created is None


def test_an_index_is_pinned_by_its_own_digest_and_dated_by_its_linux_amd64_image(
    server: RunningRegistry, client: httpx.Client, registry: OciRegistry
) -> None:
    index = push_index(client, "facts/multi", "3.0", {"arm64": "2026-05-01T00:00:00Z", "amd64": "2026-05-02T00:00:00Z"})
    facts = registry.inspect_tag(f"{server.host}/facts/multi", "3.0", created=True)
    assert facts.digest == index
    assert facts.created == datetime(2026, 5, 2, tzinfo=UTC)


def test_cosign_signatures_are_found_under_the_sig_tag_and_judged(
    server: RunningRegistry, client: httpx.Client, registry: OciRegistry
) -> None:
    key, other = new_key(), new_key()
    public = load_public_key(public_pem(key), where="test")
    signed = push_image(client, "facts/signed", "1.0", created=None, content="signed")
    unsigned = push_image(client, "facts/signed", "1.1", created=None, content="unsigned")
    wrong = push_image(client, "facts/signed", "1.2", created=None, content="other key")
    copied = push_image(client, "facts/signed", "1.3", created=None, content="copied")
    sign(client, "facts/signed", signed, key)
    sign(client, "facts/signed", wrong, other)
    sign(client, "facts/signed", copied, key, payload_digest=signed)
    image = f"{server.host}/facts/signed"

    facts = registry.inspect_tag(image, "1.0", signatures=True)
    assert len(facts.signatures) == 1
    assert judge(facts.signatures, signed, public) is None
    none = registry.inspect_tag(image, "1.1", signatures=True)
    assert none.digest == unsigned and none.signatures == ()
    assert judge(none.signatures, unsigned, public) == "not signed (no cosign signature)"
    assert "do not verify" in str(judge(registry.inspect_tag(image, "1.2", signatures=True).signatures, wrong, public))
    assert "another image" in str(judge(registry.inspect_tag(image, "1.3", signatures=True).signatures, copied, public))

    before = sent(registry)
    registry.inspect_tag(image, "1.0", signatures=True)
    assert sent(registry) - before == 2  # the tag's HEAD and the signature manifest, both revalidated


def test_a_missing_tag_is_a_registry_error_naming_it(server: RunningRegistry, registry: OciRegistry) -> None:
    with pytest.raises(RegistryError, match=r"facts/absent:9\.9 not found"):
        registry.inspect_tag(f"{server.host}/facts/absent", "9.9")


def test_a_blob_that_does_not_match_its_digest_is_refused() -> None:
    """A registry that answers a config blob with other bytes cannot pass off another creation time."""
    config = b'{"created": "2020-01-01T00:00:00Z"}'
    digest = "sha256:" + "0" * 64
    manifest = (
        b'{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",'
        b' "config": {"digest": "sha256:' + b"1" * 64 + b'", "size": 1}, "layers": []}'
    )

    class Lying(QuietHandler):
        def do_HEAD(self) -> None:
            self.send_response(200)
            self.send_header("Docker-Content-Digest", digest)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            self.send_bytes(200, manifest if "/manifests/" in self.path else config)

    server = serve(Lying)
    try:
        host = server.url.removeprefix("http://")
        with OciRegistry(rate_limit=None) as reg, pytest.raises(RegistryError, match="does not match its digest"):
            reg.inspect_tag(f"{host}/lying/app", "1.0", created=True)
    finally:
        server.stop()


def test_gitbot_tags_shows_why_each_newer_tag_was_skipped(
    server: RunningRegistry,
    client: httpx.Client,
    tmp_path: Path,
    docker_config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = new_key()
    now = datetime.now(UTC)
    old = push_image(client, "facts/cli", "1.0.0", created=(now - timedelta(days=3)).isoformat())
    push_image(client, "facts/cli", "1.1.0", created=(now - timedelta(days=2)).isoformat(), content="unsigned")
    young = push_image(client, "facts/cli", "1.2.0", created=(now - timedelta(minutes=5)).isoformat())
    sign(client, "facts/cli", old, key)
    sign(client, "facts/cli", young, key)
    (tmp_path / "cosign.pub").write_bytes(public_pem(key))
    image = f"{server.host}/facts/cli"
    args = ["tags", image, "--filter", "1.*", "--min-age", "1h", "--cosign-key", str(tmp_path / "cosign.pub")]

    code, out, err = run([*args, "--digest"], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert re.fullmatch(r"1\.2\.0  skipped: created 5m(\d+s)? ago, younger than minAge 1h", lines[0])
    assert lines[1:] == [
        "1.1.0  skipped: not signed (no cosign signature)",
        "1.0.0  <- selected",
        f"3 of 5 tags of {server.host}/facts/cli match '1.*'; 2 skipped",  # the .sig tags count
        f"selected: 1.0.0@{old}",
    ]
    code, out, _err = run([*args, "--json"], capsys)
    document = json.loads(out)
    assert (document["selected"], document["digest"]) == ("1.0.0", old)
    assert [entry["tag"] for entry in document["skipped"]] == ["1.2.0", "1.1.0"]


def test_gitbot_tags_refuses_a_bad_key_with_one_line(
    server: RunningRegistry, tmp_path: Path, docker_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.pub").write_text("nope\n")
    code, out, err = run(["tags", f"{server.host}/facts/cli", "--cosign-key", str(tmp_path / "bad.pub")], capsys)
    assert code == 2 and out == ""
    assert "not a PEM public key" in err and len(err.strip().splitlines()) == 1


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    code = info.value.code
    assert isinstance(code, int)
    return code, out, err


def test_the_daemons_shared_and_counting_registries_pass_tag_facts_through(
    server: RunningRegistry, client: httpx.Client
) -> None:
    digest = push_image(client, "facts/daemon", "1.0", created="2026-02-03T04:05:06Z")
    recorded: list[tuple[str, str]] = []
    shared = SharedTagLists(lambda: OciRegistry(rate_limit=None))
    try:
        counting = CountingRegistry(shared, lambda system, outcome: recorded.append((system, outcome)))
        assert isinstance(counting, TagInspector)
        facts = counting.inspect_tag(f"{server.host}/facts/daemon", "1.0", created=True)
    finally:
        shared.close()
    assert (facts.digest, facts.created) == (digest, datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC))
    assert recorded == [("registry", "ok")] * 3  # HEAD, manifest, config blob


def test_a_registry_that_cannot_describe_tags_is_an_error_for_the_gated_image_only() -> None:
    class ListsOnly:
        def list_tags(self, image: str) -> list[str]:
            return ["1.0"]

    with pytest.raises(RegistryError, match="cannot report digests"):
        CountingRegistry(ListsOnly(), lambda _system, _outcome: None).inspect_tag("r.example.test/a", "1.0")
