"""Policy files: the shipped examples load, and every kind of mistake names file, line and field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gitbot.config import load_policies, load_policy, parse_duration
from gitbot.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
apiVersion: gitbot.dev/v1alpha1
kind: Policy
metadata: {name: prod}
spec:
  git: {url: https://git.example/acme/config.git, paths: [clusters/prod]}
  images:
    - name: podinfo-ga
      repository: ghcr.io/stefanprodan/podinfo
      filter: "0.1.*"
      targets: [{resource: Deployment/test/podinfo-ga, container: podinfod}]
"""


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_policies_load() -> None:
    policies = load_policies(REPO / "policies")
    by_name = {p.name: p for p in policies}
    production = by_name["production"]
    filters = {image.name: image.filter for image in production.spec.images}
    assert filters == {"podinfo-ga": "0.1.*", "podinfo-canary": "0.2.*"}
    assert production.spec.canaries[0].steps == (10, 60, 100)
    assert production.spec.canaries[0].interval == timedelta(minutes=10)
    assert by_name["staging"].spec.delivery.mode == "commit"


def test_good_policy_is_frozen(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD))
    assert policy.spec.git.branch == "main"
    with pytest.raises(ValueError, match="frozen"):
        policy.spec.git.branch = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("old", "new", "line", "needle"),
    [
        (
            "container: podinfod}",
            "containr: podinfod}",
            10,
            "spec.images[0].targets[0].containr: is not a known field",
        ),
        ('filter: "0.1.*"', "filter: [1, 2]", 9, "spec.images[0].filter"),
        ("name: podinfo-ga", "name: Podinfo_GA", 7, "spec.images[0].name"),
        ("kind: Policy", "kind: Polcy", 2, "kind: must be one of 'Policy'"),
        ("paths: [clusters/prod]", "paths: [../etc]", 5, "paths must stay inside the repository"),
        ("https://git.example", "https://bot:s3cret@git.example", 5, "must not contain a password"),
        ("      repository: ghcr.io/stefanprodan/podinfo\n", "", 7, "spec.images[0].repository: is required"),
    ],
)
def test_mistakes_name_file_line_and_field(tmp_path: Path, old: str, new: str, line: int, needle: str) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    text = info.value.one_line()
    assert text.startswith(f"{path}:{line}: "), text
    assert needle in text
    assert "\n" not in text
    assert "s3cret" not in text


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "  oops: [\n")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert str(path) in info.value.one_line()
    assert "not valid YAML" in info.value.one_line()


def test_wrong_api_version(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("gitbot.dev/v1alpha1", "gitbot.dev/v2"))
    with pytest.raises(ConfigError, match=r"policy.yaml:1: apiVersion must be gitbot.dev/v1alpha1"):
        load_policy(path)


def test_pull_request_mode_needs_github(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "  delivery: {mode: pull-request}\n")
    with pytest.raises(ConfigError, match="needs a github section"):
        load_policy(path)


def test_duplicate_policy_names(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD, "b.yaml")
    with pytest.raises(ConfigError, match="already used by"):
        load_policies(tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(minutes=90)),
        (45, timedelta(seconds=45)),
    ],
)
def test_durations(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "5x", "0s", "m", -3, True, float("inf"), 1e300, "99999999999h"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("value", [".inf", "99999999999h", "1e300"])
def test_durations_beyond_a_timedelta_are_one_line_errors(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, GOOD + f"  schedule: {{interval: {value}}}\n")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert info.value.one_line().startswith(f"{path}:11: spec.schedule.interval: expected a duration")
