"""Golden before/after files for the difficult cases (most taken from the shared corpus): CRLF and mixed
line endings, BOM, tabs, no final newline, anchors, flow style, comments and markers, multiple documents.

Each case directory holds `before.yaml`, `assignments.txt` (one `DOCUMENT:POINTER=VALUE` per line) and
the reviewed `after.yaml`; the edit must reproduce `after.yaml` byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gitbot.commands.set import parse_assignment
from gitbot.domain import Assignment
from gitbot.edits import apply_assignments
from gitbot.errors import EditError

HERE = Path(__file__).resolve().parent
CASES = sorted(p.name for p in HERE.iterdir() if (p / "before.yaml").is_file())


def load(case: str) -> tuple[str, list[Assignment], bytes]:
    before = (HERE / case / "before.yaml").read_bytes().decode("utf-8")
    lines = (HERE / case / "assignments.txt").read_text(encoding="utf-8").splitlines()
    after = (HERE / case / "after.yaml").read_bytes()
    return before, [parse_assignment(line) for line in lines if line], after


def test_all_difficult_cases_are_covered() -> None:
    wanted = {"crlf", "bom", "tabs", "no-final-newline", "anchors", "flow-style", "comments", "multidoc"}
    assert wanted <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_edit_reproduces_the_golden_file(case: str) -> None:
    before, assignments, after = load(case)
    assert apply_assignments(before, assignments, source=case).encode("utf-8") == after


@pytest.mark.parametrize("case", CASES)
def test_golden_differs_only_on_assigned_lines(case: str) -> None:
    before, assignments, after = load(case)
    old_lines = before.encode("utf-8").splitlines(keepends=True)
    new_lines = after.splitlines(keepends=True)
    assert len(old_lines) == len(new_lines)
    changed = [i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b]
    assert 0 < len(changed) <= len(assignments)


def test_special_bytes_survive() -> None:
    assert (HERE / "bom" / "after.yaml").read_bytes().startswith(b"\xef\xbb\xbf")
    assert (HERE / "crlf-full" / "after.yaml").read_bytes().count(b"\r\n") == 57
    assert b"\t" in (HERE / "tabs" / "after.yaml").read_bytes()
    assert not (HERE / "no-final-newline" / "after.yaml").read_bytes().endswith(b"\n")


def test_shared_anchor_in_golden_file_is_refused() -> None:
    before, _, _ = load("anchors")
    pointer = "/spec/values/controllers/audiobookshelf/containers/app/probes/liveness/spec/httpGet/port"
    with pytest.raises(EditError, match="shared through an anchor"):
        apply_assignments(before, [Assignment(0, pointer, "8080")], source="anchors")
