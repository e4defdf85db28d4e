"""The README's examples against the code: its policy reference loads, its commands and options exist."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from gitbot.cli import cli
from gitbot.config import load_policies

README = Path(__file__).resolve().parents[2] / "README.md"
# `gitbot <command> ...` inside backquotes or on a line of a shell block.
_INVOCATION = re.compile(r"(?:^|`)gitbot (?:--debug )?([a-z]+)((?: [^`|#\n]*)?)", re.MULTILINE)


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def policy_example() -> str:
    match = re.search(r"```yaml\n(.*?)```", section("Policy reference"), re.DOTALL)
    assert match is not None, "the policy reference has no YAML example"
    return match.group(1)


def invocations() -> list[tuple[str, str]]:
    text = section("Quick start against a real GitHub repository") + section("Command reference")
    found = [(m.group(1), m.group(2)) for m in _INVOCATION.finditer(text)]
    assert len(found) >= 15
    return found


def test_the_policy_reference_example_loads(tmp_path: Path) -> None:
    (tmp_path / "production.yaml").write_text(policy_example(), encoding="utf-8")
    [policy] = load_policies(tmp_path)
    assert policy.name == "production"
    # The example shows every section of the format, so a field dropped from it is noticed here.
    spec = policy.spec
    assert spec.images and spec.canaries and spec.registries and spec.notifications
    assert spec.delivery.github is not None


@pytest.mark.parametrize(("name", "arguments"), invocations())
def test_every_command_and_option_the_readme_shows_exists(name: str, arguments: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert isinstance(command, click.Command), f"README shows `gitbot {name}`, which does not exist"
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", arguments):
        assert option in known, f"README shows `gitbot {name} {option}`, which `gitbot {name}` does not accept"
