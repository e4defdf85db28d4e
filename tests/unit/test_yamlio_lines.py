"""Errors for texts no YAML parser takes name their line: a forbidden character, collections nested too deep."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gitbot import yamlio
from gitbot.errors import ManifestError

PARSERS = [yamlio.parse, yamlio.parse_fast]


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize(
    ("text", "line", "shown"),
    [
        ("a: 1\nb: x\x00y\n", 2, "control character U+0000"),
        ("a: 1\nb: 2\n\nc: [x, \x07]\n", 4, "control character U+0007"),
        ("\ufeffa: 1\nb: \x1b[31m\n", 2, "control character U+001B"),
        ("a: 1\r\nb: 2\r\nc: \x9f\r\n", 3, "control character U+009F"),
        ("# c\n" * 40 + "image: \ud800\n", 41, "character U+D800"),
    ],
)
def test_a_forbidden_character_is_reported_at_its_line(
    parser: Callable[[str, str], object], text: str, line: int, shown: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        parser(text, "clusters/app.yaml")
    assert caught.value.where == f"clusters/app.yaml:{line}"
    assert str(caught.value) == f"clusters/app.yaml:{line}: not valid YAML: {shown} is not allowed"


@pytest.mark.parametrize(("parser", "depth"), [(yamlio.parse, 600), (yamlio.parse_fast, 1200)])
def test_flow_collections_nested_too_deep_name_their_line(parser: Callable[[str, str], object], depth: int) -> None:
    text = "a: 1\nb: 2\nimage: " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(ManifestError, match="nested too deeply") as caught:
        parser(text, "f.yaml")
    assert caught.value.where == "f.yaml:3"


@pytest.mark.parametrize(("parser", "depth"), [(yamlio.parse, 600), (yamlio.parse_fast, 1200)])
def test_block_collections_nested_too_deep_name_a_line_inside_the_nesting(
    parser: Callable[[str, str], object], depth: int
) -> None:
    text = "a: 1\nb:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(depth)) + "c: 2\n"
    with pytest.raises(ManifestError, match="nested too deeply") as caught:
        parser(text, "f.yaml")
    where = caught.value.where
    assert where is not None and where.startswith("f.yaml:")
    line = int(where.rsplit(":", 1)[1])
    # Inside the nested block, far below its first line: the reader is taken to where it gets too deep.
    assert 400 < line <= depth + 2
