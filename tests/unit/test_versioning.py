"""Tag filters, ordering and selection, as tables of real-looking tag lists."""

from __future__ import annotations

from functools import cmp_to_key

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitbot.errors import FilterError
from gitbot.imageref import is_valid_tag
from gitbot.versioning import (
    TagFilter,
    compare,
    parse_filter,
    parse_version,
    select,
)


def newest_first(tags: list[str], flt: TagFilter) -> list[str]:
    """`tags` ordered newest first by `compare` (no filtering)."""

    def order(a: str, b: str) -> int:
        return compare(a, b, flt)

    return sorted(tags, key=cmp_to_key(order), reverse=True)


# podinfo's early release line as its registry lists it (unsorted), with the kinds of tags CI adds.
PODINFO = [
    *("0.1.0", "0.1.1", "0.1.2", "0.1.3", "0.1.10", "0.1.12", "0.1.9"),
    *("0.2.0", "0.2.1", "0.2.2", "0.2.10", "0.10.0", "0.2.3-rc.1", "0.3.0-beta.1", "v0.2.4"),
    *("latest", "sha-abc1234", "main", "1.9", "1.10", "2.0.0-rc.1", "2.0.0-rc.2"),
]


@pytest.mark.parametrize(
    ("filter_text", "tags", "selected"),
    [
        # A glob matches the tag's text as written, as Flux v1 does: `0.2.*` never takes `v0.2.2`.
        ("0.2.*", ["0.2.1", "v0.2.2"], "0.2.1"),
        ("glob:0.2.*", ["0.2.1", "v0.2.2"], "0.2.1"),
        ("0.2.*", ["v0.2.2"], None),
        ("v0.2.*", ["0.2.1", "v0.2.2"], "v0.2.2"),
        # A leading `v` belongs to semver's version syntax, so a range takes both spellings.
        ("semver:~0.2", ["0.2.1", "v0.2.2"], "v0.2.2"),
    ],
)
def test_glob_matches_tag_text_and_semver_takes_leading_v(
    filter_text: str, tags: list[str], selected: str | None
) -> None:
    assert select(tags, parse_filter(filter_text)).selected == selected


@pytest.mark.parametrize(
    ("filter_text", "selected", "candidates"),
    [
        ("0.1.*", "0.1.12", ["0.1.12", "0.1.10", "0.1.9", "0.1.3", "0.1.2", "0.1.1", "0.1.0"]),
        ("glob:0.1.*", "0.1.12", ["0.1.12", "0.1.10", "0.1.9", "0.1.3", "0.1.2", "0.1.1", "0.1.0"]),
        ("0.2.*", "0.2.10", ["0.2.10", "0.2.2", "0.2.1", "0.2.0"]),
        ("0.10.*", "0.10.0", ["0.10.0"]),
        ("semver:~0.1", "0.1.12", ["0.1.12", "0.1.10", "0.1.9", "0.1.3", "0.1.2", "0.1.1", "0.1.0"]),
        ("semver:0.2.x", "0.2.10", ["0.2.10", "v0.2.4", "0.2.2", "0.2.1", "0.2.0"]),
        ("semver:^1.2", "1.10", ["1.10", "1.9"]),
        ("semver:>=1.0.0 <2.0.0", "1.10", ["1.10", "1.9"]),
        ("semver:>=0.2.3-rc.0 <0.3.0", "0.2.10", ["0.2.10", "v0.2.4", "0.2.3-rc.1"]),
        ("semver:2.0.0-rc.1 - 2.0.0", "2.0.0-rc.2", ["2.0.0-rc.2", "2.0.0-rc.1"]),
        ("semver:>=3", None, []),
        (
            r"regexp:^0\.1\.(?P<version>\d+)$",
            "0.1.12",
            ["0.1.12", "0.1.10", "0.1.9", "0.1.3", "0.1.2", "0.1.1", "0.1.0"],
        ),
        ("regexp:^sha-", "sha-abc1234", ["sha-abc1234"]),
        ("latest", "latest", ["latest"]),
        ("*-rc.*", "2.0.0-rc.2", ["2.0.0-rc.2", "2.0.0-rc.1", "0.2.3-rc.1"]),
        ("nothing-*", None, []),
    ],
)
def test_podinfo_selection(filter_text: str, selected: str | None, candidates: list[str]) -> None:
    result = select(PODINFO, parse_filter(filter_text))
    assert result.selected == selected
    assert list(result.candidates) == candidates
    assert result.ignored == ()


def test_glob_star_orders_versions_above_other_tags_and_leaves_out_prereleases() -> None:
    result = select(PODINFO, parse_filter("*"))
    assert result.selected == "1.10"
    assert "2.0.0-rc.2" not in result.candidates and "0.3.0-beta.1" not in result.candidates
    # Tags that are not versions rank below every version, alphabetically newest last.
    assert list(result.candidates[-3:]) == ["sha-abc1234", "main", "latest"]


def test_one_ten_is_newer_than_one_nine() -> None:
    flt = parse_filter("*", order="numerical")
    assert compare("1.10", "1.9", flt) == 1
    assert newest_first(["1.9", "1.10", "1.2"], flt) == ["1.10", "1.9", "1.2"]


@pytest.mark.parametrize(
    ("tags", "order", "expected"),
    [
        # Plain numbers are versions (major only), leading zeros or not, in every order.
        (["9", "10", "100", "011"], "numerical", ["100", "011", "10", "9"]),
        (["9", "10", "100", "011"], "alphabetical", ["100", "011", "10", "9"]),
        # Parts that are not versions: numbers by value, or text.
        (["1e3", "0.5.0.1", "1.2.3.4"], "numerical", ["1e3", "1.2.3.4", "0.5.0.1"]),
        (["b9", "b10", "a20"], "alphabetical", ["b9", "b10", "a20"]),
        # Versions rank above numbers and text whatever the order.
        (["zzz", "1.0", "2e9"], "numerical", ["1.0", "2e9", "zzz"]),
    ],
)
def test_orders_of_the_version_part(tags: list[str], order: str, expected: list[str]) -> None:
    flt = parse_filter(r"regexp:^(?P<version>[\w.]+)$", order=order)  # type: ignore[arg-type]
    assert list(select(tags, flt).candidates) == expected


def test_numerical_order_of_a_regexp_group_that_is_not_a_version() -> None:
    flt = parse_filter(r"regexp:^main-[0-9a-f]+-(?P<ts>\d+)$", extract="$ts", order="numerical")
    tags = ["main-abc-1700000000", "main-def-1700000100", "main-fff-999", "feature-x-1800000000"]
    assert select(tags, flt).selected == "main-def-1700000100"
    assert list(select(tags, flt).candidates) == [
        "main-def-1700000100",
        "main-abc-1700000000",
        "main-fff-999",
    ]


def test_alphabetical_order_of_extracted_part() -> None:
    flt = parse_filter(r"regexp:^rel-(?P<day>[a-z]+)$", extract="${day}", order="alphabetical")
    assert list(select(["rel-b", "rel-c", "rel-a"], flt).candidates) == ["rel-c", "rel-b", "rel-a"]


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["v0.1.3", "0.1.2", "v0.1.10"], ["v0.1.10", "v0.1.3", "0.1.2"]),
        (["V1.0.0", "v0.9.0"], ["V1.0.0", "v0.9.0"]),
    ],
)
def test_leading_v_is_accepted(tags: list[str], expected: list[str]) -> None:
    assert list(select(tags, parse_filter("semver:>=0.1")).candidates) == expected


def test_prereleases_excluded_unless_named_or_allowed() -> None:
    tags = ["0.2.0", "0.2.1-rc.1", "0.2.1-rc.2"]
    assert select(tags, parse_filter("0.2.*")).selected == "0.2.0"
    assert select(tags, parse_filter("semver:~0.2")).selected == "0.2.0"
    assert select(tags, parse_filter("0.2.*", allow_prerelease=True)).selected == "0.2.1-rc.2"
    assert select(tags, parse_filter("semver:~0.2", allow_prerelease=True)).selected == "0.2.1-rc.2"
    assert select(tags, parse_filter("0.2.1-rc.*")).selected == "0.2.1-rc.2"
    assert select(tags, parse_filter("semver:>=0.2.1-rc.1")).selected == "0.2.1-rc.2"
    assert parse_filter("semver:>=0.2.1-rc.1").names_prerelease
    assert not parse_filter("semver:~0.2").names_prerelease


def test_release_is_newer_than_its_prereleases() -> None:
    flt = parse_filter("*", allow_prerelease=True)
    assert newest_first(["1.0.0-rc.1", "1.0.0", "1.0.0-alpha", "1.0.0-rc.10"], flt) == [
        "1.0.0",
        "1.0.0-rc.10",
        "1.0.0-rc.1",
        "1.0.0-alpha",
    ]


def test_build_metadata_does_not_change_the_order() -> None:
    flt = parse_filter("*")
    # OCI tags cannot hold `+`: build metadata is written with `_`.
    assert compare("1.2.3_build.9", "1.2.3_build.10", flt) == 0
    assert compare("1.2.3_build.9", "1.2.3", flt) == 0
    assert compare("1.2.4_build.1", "1.2.3_build.99", flt) == 1
    assert parse_version("1.2.3_b.7") is not None
    assert str(parse_version("1.2.3_b.7")) == "1.2.3+b.7"


def test_quarantined_tags_are_skipped_and_reported() -> None:
    result = select(PODINFO, parse_filter("0.1.*"), quarantine={"0.1.12", "0.1.10", "9.9.9"})
    assert result.selected == "0.1.9"
    assert result.quarantined == ("0.1.12", "0.1.10")
    assert "0.1.12" not in result.candidates


def test_invalid_tags_are_ignored_and_counted_whatever_the_filter() -> None:
    hostile = [
        "0.1.1",
        "0.1.2\n",
        "0.1.3 ",
        ".0.1.4",
        "-0.1.5",
        "0.1.6/x",
        "a" * 129,
        "0.1.7$(id)",
        "",
        "0.1.8\u00e9",
    ]
    result = select([*hostile, "0.1.1"], parse_filter("regexp:."))
    assert result.selected == "0.1.1"
    assert result.candidates == ("0.1.1",)
    assert len(result.ignored) == len(hostile) - 1
    assert "0.1.2\n" in result.ignored


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("semver:not-a-range", "invalid semver range"),
        ("semver:", "empty semver filter"),
        ("regexp:(unclosed", "invalid regexp"),
        ("regexp:", "empty regexp filter"),
        ("glob:", "empty glob filter"),
        ("", "empty glob filter"),
        ("foo:bar", "unknown filter kind 'foo'"),
        ("0.1.* ", "characters no tag can have"),
        ("a/b*", "characters no tag can have"),
    ],
)
def test_bad_filters_raise_with_the_location(text: str, fragment: str) -> None:
    where = "policies/prod.yaml:12 spec.images[0].filter"
    with pytest.raises(FilterError) as info:
        parse_filter(text, where=where)
    assert info.value.where == where
    assert fragment in info.value.message
    line = info.value.one_line()
    assert line.startswith(where) and "\n" not in line
    assert info.value.exit_code == 2


def test_extract_must_fit_the_regexp() -> None:
    with pytest.raises(FilterError, match="does not fit"):
        parse_filter(r"regexp:^(?P<v>\d+)$", extract="$ts")
    with pytest.raises(FilterError, match="needs a regexp"):
        parse_filter("0.1.*", extract="$v")
    with pytest.raises(FilterError, match="unknown order"):
        parse_filter("*", order="random")  # type: ignore[arg-type]


def test_filter_remembers_how_it_was_written() -> None:
    flt = parse_filter("semver:~0.1", allow_prerelease=True)
    assert (flt.text, flt.kind, flt.expression, flt.allow_prerelease) == (
        "semver:~0.1",
        "semver",
        "~0.1",
        True,
    )
    assert flt == parse_filter("semver:~0.1", allow_prerelease=True)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet="0123456789.v-rcab_x", max_size=10), max_size=25))
def test_selection_is_consistent_for_any_tag_list(tags: list[str]) -> None:
    result = select(tags, parse_filter("*", allow_prerelease=True))
    # Every valid tag is a candidate exactly once; every invalid one is ignored; order is newest first.
    valid = {tag for tag in tags if is_valid_tag(tag)}
    assert set(result.candidates) == valid
    assert len(result.candidates) == len(valid)
    assert set(result.ignored) == {tag for tag in tags if not is_valid_tag(tag)}
    flt = parse_filter("*", allow_prerelease=True)
    for newer, older in zip(result.candidates, result.candidates[1:], strict=False):
        assert compare(newer, older, flt) >= 0
    assert result.selected == (result.candidates[0] if result.candidates else None)
    # The order does not depend on the order the registry listed the tags in.
    assert select(list(reversed(tags)), flt).candidates == result.candidates


def test_glob_with_a_name_prefix_orders_by_the_version_after_it() -> None:
    tags = ["app-1.9.0", "app-1.10.0", "app-1.11.0-rc.1", "other-9.0.0", "app-latest"]
    result = select(tags, parse_filter("app-*"))
    assert list(result.candidates) == ["app-1.10.0", "app-1.9.0", "app-latest"]


def test_leading_v_in_a_range() -> None:
    assert select(["v1.2.0", "1.9.0", "2.0.0"], parse_filter("semver:>=v1.0.0 <v2")).selected == "1.9.0"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("0.2.*-rc.*", True),
        ("*-rc.*", True),
        (r"regexp:^\d+\.\d+\.\d+-rc\.\d+$", True),
        ("semver:>=1.0.0-beta.1", True),
        ("app-*", False),
        ("sha-*", False),
        (r"regexp:^app-(?P<version>[\w.-]+)$", False),
        ("semver:^1.0", False),
    ],
)
def test_which_filters_name_a_prerelease(text: str, names: bool) -> None:
    assert parse_filter(text).names_prerelease is names


@pytest.mark.parametrize("spelling", [">= 1.0.0 < 2.0.0", ">=1.0.0, <2.0.0", ">= v1.0.0,<2", ">=1.0.0 <2.0.0"])
def test_a_range_with_spaces_after_operators_or_commas_between_comparators(spelling: str) -> None:
    tags = ["0.9.0", "1.2.0", "1.9.0", "2.0.0"]
    assert select(tags, parse_filter(f"semver:{spelling}")).candidates == ("1.9.0", "1.2.0")


def test_a_comma_separated_range_still_names_its_pre_release() -> None:
    assert parse_filter("semver:>=0.2.1-rc.1, <0.3.0").names_prerelease


class _CountedTag(str):
    """A tag that counts how often it is compared for equality (hashing alone does not count)."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        _CountedTag.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_invalid_tags_are_ignored_in_one_pass_not_by_searching_the_list() -> None:
    invalid = [_CountedTag(f"bad tag {i}") for i in range(2000)]
    _CountedTag.comparisons = 0
    result = select([*invalid, *invalid[:10], "0.1.1"], parse_filter("0.1.*"))
    assert result.selected == "0.1.1"
    assert len(result.ignored) == 2000
    assert list(result.ignored) == invalid
    # Searching a list of ignored tags per tag compares each with all before it (about n²/2 = 2,000,000).
    assert _CountedTag.comparisons < 10 * len(invalid)
