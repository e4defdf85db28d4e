"""The mistakes of a first hour with a policy: each is one line `file:line: field: message` that says the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitbot.config import load_policy, parse_duration
from gitbot.errors import ConfigError
from tests.unit.test_config import CANARY, GOOD, write


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    line = info.value.one_line()
    assert line.startswith(f"{path}:"), line
    return line.removeprefix(f"{path}:")


def test_a_misspelt_field_is_named_first_with_what_was_meant(tmp_path: Path) -> None:
    # `weights:` instead of `steps:` gives two errors (an unknown field and a missing one): the unknown one leads.
    text = error_of(tmp_path, CANARY.replace("steps: [10, 60, 100]", "weights: [10, 60, 100]"))
    assert text.startswith("22: spec.canaries[0].weights: is not a known field; did you mean steps?"), text
    assert text.endswith("(and 1 more)"), text


def test_a_field_of_another_tool_is_pointed_to_its_place(tmp_path: Path) -> None:
    text = error_of(
        tmp_path,
        CANARY.replace('prometheus: {url: "http://prometheus:9090"}', 'prometheusUrl: "http://prometheus:9090"'),
    )
    expected = "24: spec.canaries[0].analysis.prometheusUrl: is not a known field; did you mean prometheus: {url: ...}?"
    assert text.startswith(expected), text


def test_a_near_miss_is_matched_by_spelling(tmp_path: Path) -> None:
    text = error_of(tmp_path, GOOD.replace("container: podinfod}", "containr: podinfod}"))
    expected = "10: spec.images[0].targets[0].containr: is not a known field; did you mean container?"
    assert text.startswith(expected), text


def test_an_unknown_field_without_a_near_miss_lists_the_known_ones(tmp_path: Path) -> None:
    text = error_of(tmp_path, GOOD.replace("container: podinfod}", "zzz: podinfod}"))
    assert "spec.images[0].targets[0].zzz: is not a known field (known: resource, container)" in text, text


@pytest.mark.parametrize(
    ("old", "new", "line", "expected"),
    [
        (
            "route: VirtualService/test/podinfo",
            "route: VirtualService/podinfo",
            "18: spec.canaries[0].route: ",
            "expected Kind/namespace/name, such as VirtualService/test/podinfo or HTTPRoute/test/podinfo",
        ),
        (
            "resource: Deployment/test/podinfo-canary",
            "resource: podinfo-canary",
            "14: spec.images[1].targets[0].resource: ",
            "expected Kind/namespace/name, such as Deployment/test/podinfo",
        ),
        (
            "- name: podinfo\n",
            "- name: Podinfo\n",
            "17: spec.canaries[0].name: ",
            "expected a name of lower-case letters, digits and '-'",
        ),
    ],
)
def test_a_form_is_said_in_words_with_an_example(tmp_path: Path, old: str, new: str, line: str, expected: str) -> None:
    assert old in CANARY
    text = error_of(tmp_path, CANARY.replace(old, new, 1))
    assert text.startswith(line), text
    assert expected in text, text
    assert "^" not in text and "[a-z" not in text, text


@pytest.mark.parametrize(
    ("old", "new"),
    [("window: 5m", "window: 60"), ("steps: [10, 60, 100]", "interval: 60\n      steps: [10, 60, 100]")],
)
def test_a_duration_without_a_unit_is_refused(tmp_path: Path, old: str, new: str) -> None:
    text = error_of(tmp_path, CANARY.replace(old, new, 1))
    assert "needs a unit" in text and "60s" in text, text


@pytest.mark.parametrize("value", [60, 1.5, "60"])
def test_parse_duration_wants_a_unit(value: object) -> None:
    with pytest.raises(ValueError, match="needs a unit"):
        parse_duration(value)


def test_every_error_of_a_policy_has_one_form(tmp_path: Path) -> None:
    # A check across fields (unique names) reads like a field error: `file:line: field: message`.
    text = error_of(tmp_path, CANARY.replace("- name: podinfo-canary", "- name: podinfo-ga"))
    assert text.startswith("11: spec.images[1].name: 'podinfo-ga' is already the name"), text
