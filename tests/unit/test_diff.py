"""`gitbot plan --diff`: the unified diff of the planned files, line endings as the files have them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gitbot.cycle import unified_diff
from gitbot.domain import Plan


def plan(files: dict[str, str]) -> Plan:
    return Plan("p", "n", "image-update", (), tuple(sorted(files.items())), "s", "b", (), "id")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("a: 1\r\nb: 2\r\nc: 3\r\n", "a: 1\r\nb: 9\r\nc: 3\r\n"),  # CRLF kept on every line
        ("a: 1\nb: 2\nc: 3", "a: 1\nb: 2\nc: 4"),  # no newline at the end
        ("a: 1\r\nc: 3", "a: 1\r\nc: 4"),  # both
        ("a: 1 # x\u2028y\x0cz\nb: 2\n", "a: 1 # x\u2028y\x0cz\nb: 3\n"),  # not line breaks for git
    ],
)
def test_the_diff_applies_with_git_apply(tmp_path: Path, old: str, new: str) -> None:
    (tmp_path / "f.yaml").write_bytes(old.encode())
    diff = unified_diff(tmp_path, [plan({"f.yaml": new})])
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "apply", "--whitespace=nowarn", "-"], input=diff.encode(), check=True)
    assert (tmp_path / "f.yaml").read_bytes() == new.encode()


def test_a_changed_last_line_without_newline_is_marked(tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text("a: 1\nc: 3", encoding="utf-8")
    diff = unified_diff(tmp_path, [plan({"f.yaml": "a: 1\nc: 4"})])
    assert diff.endswith("-c: 3\n\\ No newline at end of file\n+c: 4\n\\ No newline at end of file\n")
