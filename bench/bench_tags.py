"""Listing and selecting over a repository with 10,000 tags, against a real `docker-registry`.

Run from the repository root: `python -m bench.bench_tags`. One image is pushed over HTTP, its tag is
copied on disk to 10,000 tags (one manifest PUT per tag would dominate the run), then the client lists
the repository directly (this registry returns everything in one answer) and through the paging proxy
(`n=1000`, `Link` pages), and selection runs over the list with three filters. Prints requests and times.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from gitbot.adapters.registry import OciRegistry
from gitbot.versioning import parse_filter, select
from tests.support.registry import PagingProxy, clone_tags_on_disk, push_tags, start_registry

TAG_COUNT = 10_000


def make_tags() -> list[str]:
    versions = [f"1.{minor}.{patch}" for minor in range(99) for patch in range(100)]
    return versions + [f"sha-{index:07x}" for index in range(TAG_COUNT - len(versions))]


def main() -> None:
    tags = make_tags()
    with tempfile.TemporaryDirectory(prefix="gitbot-bench-") as folder:
        started = time.perf_counter()
        registry = start_registry(Path(folder) / "registry")
        proxy = PagingProxy(registry.url).start()
        try:
            push_started = time.perf_counter()
            push_tags(registry.url, "bench/app", tags[:100])
            push_seconds = time.perf_counter() - push_started
            clone_tags_on_disk(registry.root, "bench/app", tags[0], tags[100:])
            print(
                f"setup: registry up and {TAG_COUNT} tags in {time.perf_counter() - started:.2f} s "
                f"(100 manifest PUTs: {push_seconds * 10:.1f} ms a tag)"
            )

            with OciRegistry(rate_limit=None) as client:
                began = time.perf_counter()
                listed = client.list_tags(f"{registry.host}/bench/app")
                direct = time.perf_counter() - began
                made = sum(client.requests.values())
                print(f"list direct: {len(listed)} tags, {made} request(s), {direct * 1000:.0f} ms")
                began = time.perf_counter()
                again = client.list_tags(f"{registry.host}/bench/app")
                seconds = time.perf_counter() - began
                made = sum(client.requests.values())
                print(f"list again (cache): {len(again)} tags, {made} request(s) in all, {seconds * 1e3:.2f} ms")

            with OciRegistry(rate_limit=None, page_size=1000) as client:
                began = time.perf_counter()
                paged = client.list_tags(f"{proxy.host}/bench/app")
                seconds = time.perf_counter() - began
                print(
                    f"list paged (n=1000): {len(paged)} tags, {sum(client.requests.values())} requests, "
                    f"{seconds * 1000:.0f} ms"
                )
            assert sorted(paged) == sorted(listed) == sorted(tags)

            for text in ("1.42.*", "semver:^1.50", r"regexp:^1\.(?P<version>\d+\.\d+)$", "*"):
                flt = parse_filter(text)
                began = time.perf_counter()
                result = select(listed, flt)
                seconds = time.perf_counter() - began
                print(
                    f"select {text!r}: {result.selected} of {len(result.candidates)} candidates, "
                    f"{len(result.ignored)} ignored, {seconds * 1000:.0f} ms"
                )
        finally:
            proxy.stop()
            registry.stop()


if __name__ == "__main__":
    main()
