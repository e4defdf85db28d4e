"""Messages of plans with thousands of changes stay bounded: a commit message lists `CHANGES_IN_MESSAGE`
changes and says how many more; a pull request shows `CHANGES_IN_TABLE` rows and folds the rest into a
`<details>` section that stays within GitHub's body limit, saying how many it could not list."""

from __future__ import annotations

from dataclasses import replace

from gitbot.domain import Change
from gitbot.messages import (
    CHANGES_IN_MESSAGE,
    CHANGES_IN_TABLE,
    change_table,
    image_commit_body,
    pull_request_body,
)
from tests.unit.test_messages import CHANGE, UPDATE


def changes(count: int, prefix: str = "app") -> tuple[Change, ...]:
    return tuple(replace(CHANGE, file=f"clusters/prod/{prefix}-{i}.yaml") for i in range(count))


def listed(body: str) -> list[str]:
    return [line for line in body.splitlines() if line.startswith("  clusters/prod/")]


def test_a_few_changes_are_all_listed_in_the_commit_message() -> None:
    body = image_commit_body("production", [replace(UPDATE, changes=changes(CHANGES_IN_MESSAGE))])
    assert len(listed(body)) == CHANGES_IN_MESSAGE and "more change" not in body


def test_a_commit_message_lists_a_bounded_number_of_changes_and_counts_the_rest() -> None:
    first = replace(UPDATE, name="api", changes=changes(CHANGES_IN_MESSAGE - 10, "api"))
    second = replace(UPDATE, name="web", changes=changes(10_000, "web"))
    third = replace(UPDATE, name="jobs", changes=changes(1, "jobs"))
    body = image_commit_body("production", [first, second, third])
    lines = listed(body)
    assert len(lines) == CHANGES_IN_MESSAGE
    assert lines[-1].startswith("  clusters/prod/web-9.yaml ")
    assert "  ... and 9,990 more changes of web (10,000 changes in all; the commit's diff has every file)" in body
    assert "  ... and 1 more change of jobs (1 change in all; the commit's diff has every file)" in body
    assert "clusters/prod/jobs-0.yaml" not in body
    assert len(body) < 20_000


def test_a_short_change_table_is_one_table() -> None:
    table = change_table(changes(CHANGES_IN_TABLE))
    assert "<details>" not in table and table.count("\n| `clusters/prod/") == CHANGES_IN_TABLE


def test_a_long_change_table_folds_what_fits_and_counts_the_rest() -> None:
    many = changes(20_000)
    body = pull_request_body(summary="s", changes=many, why="w", evidence="", rollback="r", plan="abc")
    assert len(body) < 65_536, "GitHub refuses a longer body"
    shown, _, folded = body.partition("<details>")
    assert shown.count("| `clusters/prod/app-") == CHANGES_IN_TABLE
    assert "<summary>19,950 more changes (20,000 changes in all)</summary>" in folded
    in_details = folded.count("| `clusters/prod/app-")
    assert 100 < in_details < 19_950
    assert f"... and {19_950 - in_details:,} more changes not listed here; the diff has every file." in folded
    assert folded.index("</details>") < folded.index("### Why")
    assert body.rstrip().endswith("<!-- gitbot:plan-id=abc -->")


def test_a_table_folding_everything_it_has_says_nothing_is_left_out() -> None:
    table = change_table(changes(CHANGES_IN_TABLE + 3))
    assert "<summary>3 more changes (53 changes in all)</summary>" in table
    assert "not listed" not in table and table.endswith("</details>")
