"""What hostile input costs now that it is bounded: a 50 MB ConfigMap in a scanned tree, 100,000 invalid tags,
a registry answer of 30 MB, and a registry that drips one byte every 2 seconds.

Run from the repository root: `python -m bench.bench_limits`. Prints wall time and peak traced memory of
each; the registries are loopback servers from `tests/support/registry.py`.
"""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from gitbot.adapters.registry import OciRegistry
from gitbot.errors import RegistryError
from gitbot.manifests import scan_tree
from gitbot.versioning import parse_filter, select
from tests.support.registry import OverloadRegistry

T = TypeVar("T")
POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: app:1.0.0}]}\n"


def measured(run: Callable[[], T]) -> tuple[T, float, float]:
    """(result, seconds, peak MiB traced) of `run()`."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = run()
    finally:
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / (1 << 20)
        tracemalloc.stop()
    return result, seconds, peak


def bench_big_configmap() -> None:
    with tempfile.TemporaryDirectory(prefix="gitbot-bench-") as folder:
        root = Path(folder)
        (root / "apps").mkdir()
        (root / "apps" / "pod.yaml").write_text(POD)
        line = "  key-{:07d}: an image of containers and more text to fill the line\n"
        with (root / "apps" / "configmap.yaml").open("w") as out:
            out.write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n")
            for index in range(720_000):
                out.write(line.format(index))
        size = (root / "apps" / "configmap.yaml").stat().st_size
        scan, seconds, peak = measured(lambda: scan_tree(root, ["apps"]))
        print(
            f"scan of a {size / 1e6:.0f} MB ConfigMap beside one Pod: {seconds * 1000:.1f} ms, peak {peak:.2f} MiB; "
            f"{len(scan.targets)} target(s), problem: {scan.problems[0].why}"
        )


def bench_invalid_tags() -> None:
    tags = [f"bad tag {index}" for index in range(100_000)] + ["1.0.0", "1.0.1"]
    flt = parse_filter("1.*")
    selection, seconds, peak = measured(lambda: select(tags, flt))
    print(
        f"select over 100,000 invalid tags: {seconds * 1000:.1f} ms, peak {peak:.1f} MiB; "
        f"selected {selection.selected}, {len(selection.ignored)} ignored"
    )


def cut_off(registry: OciRegistry, image: str) -> str:
    try:
        registry.list_tags(image)
    except RegistryError as exc:
        return exc.one_line()
    return "not cut off"


def bench_registry() -> None:
    server = OverloadRegistry(body_bytes=30 * 1000 * 1000, drip_seconds=2.0).start()
    try:
        with OciRegistry(rate_limit=None) as registry:
            error, seconds, peak = measured(lambda: cut_off(registry, f"{server.host}/huge/app"))
        print(f"a 30 MB tag list answer: cut after {seconds:.2f} s, peak {peak:.1f} MiB ({error})")
        with OciRegistry(rate_limit=None, request_deadline=5.0) as registry:
            started = time.perf_counter()
            error = cut_off(registry, f"{server.host}/drip/app")
            seconds = time.perf_counter() - started
        print(f"a registry dripping 1 byte / 2 s, request deadline 5 s: cut after {seconds:.1f} s ({error})")
    finally:
        server.stop()


def main() -> None:
    bench_big_configmap()
    bench_invalid_tags()
    bench_registry()


if __name__ == "__main__":
    main()
