"""Reading history in landing order: `git log` by date and with `--topo-order` (500 commits of branches of
5,000 and 50,000 commits, a merged pull request every 5 commits), and `landing_order` plus `read_history`
over 500 commits; prints milliseconds per read."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gitbot.domain import Author, CommitInfo
from gitbot.history import landing_order, read_history

ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "LANG": "C",
}


def _stream(commits: int) -> str:
    """A fast-import stream: a main line where every fifth change comes from a merged side branch whose
    commit is dated a day before the merge."""
    lines: list[str] = []
    start = 1_700_000_000
    mark = 0
    main_mark = 0
    for n in range(commits):
        when = start + n * 60
        if n % 5 == 4 and main_mark:
            mark += 1
            side = mark
            lines += [
                "commit refs/heads/side",
                f"mark :{side}",
                f"committer Pat <pat@example.test> {when - 86_400} +0000",
                "data 12",
                "side change",
                f"from :{main_mark}",
                f"M 644 inline side-{n}.txt",
                "data 2",
                "x",
            ]
            mark += 1
            lines += [
                "commit refs/heads/main",
                f"mark :{mark}",
                f"committer Pat <pat@example.test> {when} +0000",
                "data 13",
                "Merge change",
                f"from :{main_mark}",
                f"merge :{side}",
            ]
        else:
            mark += 1
            lines += [
                "commit refs/heads/main",
                f"mark :{mark}",
                f"committer gitbot <bot@example.test> {when} +0000",
                "data 11",
                "main change",
            ]
            if main_mark:
                lines.append(f"from :{main_mark}")
            lines += [f"M 644 inline main-{n % 50}.txt", "data 2", f"{n % 10}"]
        main_mark = mark
    return "\n".join(lines) + "\n"


def _repo(root: Path, commits: int) -> Path:
    path = root / f"repo-{commits}"
    subprocess.run(["git", "init", "--quiet", "--bare", str(path)], check=True, env=ENV)
    subprocess.run(
        ["git", "--git-dir", str(path), "fast-import", "--quiet"],
        input=_stream(commits),
        text=True,
        check=True,
        env=ENV,
    )
    return path


def _time_ms(run: object, repeat: int = 5) -> float:
    assert callable(run)
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return best * 1000


def _git_log(path: Path, *extra: str) -> None:
    subprocess.run(
        ["git", "--git-dir", str(path), "log", "-z", *extra, "--max-count=500", "--format=%H%x1f%P%x1f%cI", "main"],
        check=True,
        capture_output=True,
        env=ENV,
    )


def _synthetic(commits: int) -> list[CommitInfo]:
    """A newest-first log like the repositories above, every tenth commit a bot image update."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    out: list[CommitInfo] = []
    main = ""
    bot = Author("gitbot", "bot@example.test")
    for n in range(commits):
        trailers = (
            (("Gitbot-Policy", "p"), ("Gitbot-Action", "image-update"), ("Gitbot-Target", "app"), ("Gitbot-To", str(n)))
            if n % 10 == 0
            else ()
        )
        if n % 5 == 4 and main:
            side = CommitInfo(f"s{n:039d}", (main,), bot, t0 + timedelta(minutes=n - 1440), "side", "", trailers)
            merge = CommitInfo(f"m{n:039d}", (main, side.sha), bot, t0 + timedelta(minutes=n), "Merge", "")
            out += [side, merge]
            main = merge.sha
        else:
            commit = CommitInfo(
                f"c{n:039d}", (main,) if main else (), bot, t0 + timedelta(minutes=n), "c", "", trailers
            )
            out.append(commit)
            main = commit.sha
    return sorted(out, key=lambda c: c.committed_at, reverse=True)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        for commits in (5_000, 50_000):
            path = _repo(Path(tmp), commits)
            by_date = _time_ms(lambda: _git_log(path))  # noqa: B023 (called before the loop moves on)
            topo = _time_ms(lambda: _git_log(path, "--topo-order"))  # noqa: B023
            subprocess.run(["git", "--git-dir", str(path), "commit-graph", "write", "--reachable"], check=True, env=ENV)
            graph = _time_ms(lambda: _git_log(path, "--topo-order"))  # noqa: B023
            print(
                f"git log -n 500 of {commits:>6} commits: by date {by_date:6.1f} ms, --topo-order {topo:6.1f} ms, "
                f"--topo-order with a commit-graph {graph:6.1f} ms"
            )
    log = _synthetic(500)
    order = _time_ms(lambda: landing_order(log), repeat=20)
    history = _time_ms(lambda: read_history(log, "p"), repeat=20)
    print(f"landing_order of {len(log)} commits: {order:.2f} ms; read_history: {history:.2f} ms")


if __name__ == "__main__":
    main()
