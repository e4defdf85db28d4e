"""Image references and OCI tags: what parses, into which parts, and what is refused with its place."""

from __future__ import annotations

import pytest

from gitbot.errors import ConfigError
from gitbot.imageref import ImageRef, is_valid_tag, parse_image


@pytest.mark.parametrize(
    ("tag", "valid"),
    [
        ("latest", True),
        ("_x", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("1.0\n", False),
        ("\n1.0", False),
        ("1.0\r", False),
        ("-1", False),
        (".1", False),
        ("1:0", False),
        ("UPPER_case.9-x", True),
        ("\u0661", False),
        ("", False),
    ],
)
def test_is_valid_tag(tag: str, valid: bool) -> None:
    assert is_valid_tag(tag) is valid


def test_is_valid_tag_refuses_non_strings() -> None:
    assert not is_valid_tag(123)
    assert not is_valid_tag(None)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("podinfo", ImageRef("podinfo")),
        ("podinfo:6.5.0", ImageRef("podinfo", "6.5.0")),
        ("ghcr.io/stefanprodan/podinfo:0.1.2", ImageRef("ghcr.io/stefanprodan/podinfo", "0.1.2")),
        ("localhost:5000/team/app", ImageRef("localhost:5000/team/app")),
        ("127.0.0.1:5000/app:1.0", ImageRef("127.0.0.1:5000/app", "1.0")),
        (
            "registry.example:443/a/b/c:v1@sha256:" + "ab" * 32,
            ImageRef("registry.example:443/a/b/c", "v1", "sha256:" + "ab" * 32),
        ),
        ("app@sha256:" + "0" * 64, ImageRef("app", None, "sha256:" + "0" * 64)),
        ("[::1]:5000/app:2", ImageRef("[::1]:5000/app", "2")),
    ],
)
def test_parse_image(ref: str, expected: ImageRef) -> None:
    assert parse_image(ref) == expected
    assert str(parse_image(ref)) == ref


@pytest.mark.parametrize(
    "ref",
    [
        "",
        " app",
        "App/x",
        "app:bad tag",
        "app:" + "x" * 129,
        "app@sha256:xyz",
        "host:port:5000/app",
        "registry.example:99999/app",
        "localhost:65536/app",
        "localhost:0/app",
        "a//b",
        "app:",
    ],
)
def test_parse_image_rejects_malformed(ref: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_image(ref, where="clusters/prod/app.yaml:7")
    assert info.value.where == "clusters/prod/app.yaml:7"


def test_a_password_in_a_malformed_image_reference_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        parse_image("robot:s3cr3t-pass@registry.example/app:1.0")
    assert "s3cr3t-pass" not in info.value.one_line()
    assert "***@registry.example/app:1.0" in info.value.one_line()
