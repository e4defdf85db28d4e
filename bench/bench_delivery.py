"""Figures for delivery: git checkout/commit/push over loopback smart HTTP and PR calls against the fake."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gitbot.adapters.github import GitHubForge
from gitbot.adapters.gitrepo import GitWorkspace
from gitbot.domain import Author
from tests.support.github_fake import GitHubFake
from tests.support.gitserver import GitServer
from tests.support.openapi import load_description

BOT = Author("gitbot", "gitbot@example.test")
ROUNDS = 10


def _timed(func: Callable[[], object]) -> float:
    started = time.perf_counter()
    func()
    return (time.perf_counter() - started) * 1000


def _report(name: str, samples: list[float]) -> None:
    median, worst = statistics.median(samples), max(samples)
    print(f"{name:<38} median {median:7.1f} ms   max {worst:7.1f} ms   n={len(samples)}")


def bench_git(tmp: Path) -> None:
    files = {f"clusters/app-{i}.yaml": f"image: ghcr.io/acme/app-{i}:1.0.{i}\n" for i in range(200)}
    with GitServer(tmp / "server") as server:
        url = server.create_repo("config", files)
        first: list[float] = []
        cycles: list[float] = []
        whole: list[float] = []
        commits: list[float] = []
        pushes: list[float] = []
        for index in range(ROUNDS):
            workspace = GitWorkspace(
                url, "main", tmp / f"cache-{index}", username=server.username, token=server.token, author=BOT
            )
            started = time.perf_counter()
            with workspace.checkout():
                first.append((time.perf_counter() - started) * 1000)
        workspace = GitWorkspace(url, "main", tmp / "cache", username=server.username, token=server.token, author=BOT)
        for index in range(ROUNDS):
            started = time.perf_counter()
            with workspace.checkout() as checkout:
                cycles.append((time.perf_counter() - started) * 1000)
                text = f"image: ghcr.io/acme/app-0:2.0.{index}\n"
                mark = time.perf_counter()
                checkout.commit({"clusters/app-0.yaml": text}, "m", BOT)
                commits.append((time.perf_counter() - mark) * 1000)
                pushes.append(_timed(checkout.push))
            whole.append((time.perf_counter() - started) * 1000)
        _report("git first checkout (clone, 200 files)", first)
        _report("git cached checkout (fetch + worktree)", cycles)
        _report("git commit (1 file)", commits)
        _report("git push", pushes)
        _report("git whole cycle incl. cleanup", whole)


def bench_github() -> None:
    started = time.perf_counter()
    description = load_description()
    print(f"{'OpenAPI description load':<38} {(time.perf_counter() - started) * 1000:7.1f} ms")
    with GitHubFake() as fake:
        forge = GitHubForge(fake.full_name, fake.token, base_url=fake.base_url, throttle=False)
        creates: list[float] = []
        finds: list[float] = []
        for i in range(ROUNDS):
            mark = time.perf_counter()
            forge.create_change_request(f"gitbot/p/app-{i}", "main", "t", "b", ["gitbot"])
            creates.append((time.perf_counter() - mark) * 1000)
            mark = time.perf_counter()
            forge.find_change_request(f"gitbot/p/app-{i}")
            finds.append((time.perf_counter() - mark) * 1000)
        _report("PR create (find + POST + labels)", creates)
        _report("PR find by head", finds)
        started = time.perf_counter()
        problems = description.validate_all(fake.exchanges)
        elapsed = (time.perf_counter() - started) * 1000
        each = elapsed / len(fake.exchanges)
        print(f"{'OpenAPI check per exchange':<38} {each:7.2f} ms   problems={len(problems)}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp:
        bench_git(Path(tmp))
    bench_github()


if __name__ == "__main__":
    main()
