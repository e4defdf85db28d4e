"""`gitbot plan`, `gitbot once`, `gitbot status` and `gitbot rollback`: one policy, one cycle, by hand."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from gitbot.commands.announce import announce_command, announce_cycle
from gitbot.commands.canary_view import render_canary
from gitbot.commands.compose import build_deps, policies_option, policy_option
from gitbot.commands.envcheck import require_variables
from gitbot.commands.progress import Progress
from gitbot.config import Policy, find_policy
from gitbot.cycle import CycleResult, run_cycle
from gitbot.logs import process_masker
from gitbot.manual import ImageStatus, inspect_canary
from gitbot.manual import rollback as run_rollback
from gitbot.manual import status as read_status

# A failed tag lookup is a remote failure (exit 1), reported after the rest of the cycle was done; when no
# failure is one that retrying may help (a missing repository, refused credentials) the exit is 2.
LOOKUP_FAILED_EXIT = 1
LOOKUP_REFUSED_EXIT = 2
# An image or canary left out because a file that may hold its named target cannot be read: fix the file.
SET_ASIDE_EXIT = 2


def _cycle(policy: Policy, *, deliver: bool) -> CycleResult:
    """One cycle, its stages shown on a terminal's stderr (the line is gone before anything is printed)."""
    deps = build_deps(policy, need_forge=deliver)
    with Progress(prefix=f"gitbot: {policy.name}: ") as progress:
        deps = replace(deps, progress=progress.stage, log=progress.around(deps.log))
        return run_cycle(policy, deps, deliver=deliver)


def _echo_holds(result: CycleResult) -> None:
    """One line per canary that changes nothing this cycle, saying why (an inconclusive analysis says its reason)."""
    for outcome in result.canaries:
        if outcome.held is not None:
            click.echo(f"canary {outcome.name} holds at {outcome.weight}%: {outcome.held}")


def echo_problems(result: CycleResult) -> None:
    """One line per file the cycle could not read or parse and per image it holds; what such a file left out
    of the cycle (an image or canary whose named target it may hold) is an error, told at the end."""
    for problem in result.problems:
        if problem.blocks is None:
            click.echo(f"problem: {problem}")


@click.command()
@policy_option
@policies_option
@click.option("--diff", "show_diff", is_flag=True, help="Also print a unified diff of the planned edits.")
def plan(policy_name: str, policies_dir: Path, show_diff: bool) -> None:
    """Run one cycle without delivering: print the planned changes (exit 0 with or without changes)."""
    policy = find_policy(policies_dir, policy_name)
    result = _cycle(policy, deliver=False)
    if not result.plans:
        click.echo(f"{policy.name}: nothing to change at {result.head[:12]}")
    for item in result.plans:
        click.echo(f"{item.subject}  [plan {item.plan_id}]")
        for change in item.changes:
            click.echo(f"  {change.file}:{change.resource} {change.pointer}: {change.old} -> {change.new}")
    _echo_holds(result)
    echo_problems(result)
    if show_diff and result.diff:
        click.echo(result.diff, nl=False)
    _exit_on_lookup_failures(result)


@click.command()
@policy_option
@policies_option
def once(policy_name: str, policies_dir: Path) -> None:
    """Run one cycle with delivery and print what was done (commit sha or pull request URL)."""
    policy = find_policy(policies_dir, policy_name)
    require_variables([policy])
    result = _cycle(policy, deliver=True)
    if not result.deliveries:
        click.echo(f"{policy.name}: nothing to change at {result.head[:12]}")
    for delivery in result.deliveries:
        click.echo(f"{delivery.outcome:<9} {delivery.ref}  {delivery.subject}")
    _echo_holds(result)
    echo_problems(result)
    announce_cycle(policy, result)
    _exit_on_lookup_failures(result)


def _exit_on_lookup_failures(result: CycleResult) -> None:
    """After everything else is printed (and delivered): one line per failed tag lookup, then exit 1."""
    masker = process_masker()
    for failure in result.failures:
        click.echo(f"gitbot: error: {masker.mask(failure.one_line())}", err=True)
    left_out = [problem for problem in result.problems if problem.blocks is not None]
    for problem in left_out:
        click.echo(f"gitbot: error: {masker.mask(str(problem))}", err=True)
    if result.failures:
        retry = any(failure.retryable for failure in result.failures)
        # A registry's settings at fault (exit code 2) are fixed in the policy, whatever else failed.
        base = LOOKUP_FAILED_EXIT if retry else LOOKUP_REFUSED_EXIT
        left = (SET_ASIDE_EXIT,) if left_out else ()
        sys.exit(max(base, *left, *(failure.exit_code for failure in result.failures)))
    if left_out:
        sys.exit(SET_ASIDE_EXIT)


@click.command()
@policy_option
@policies_option
def status(policy_name: str, policies_dir: Path) -> None:
    """Per image: current and newest allowed tag, quarantines; per canary: weight, step, dwell, verdict; PRs."""
    policy = find_policy(policies_dir, policy_name)
    deps = build_deps(policy, need_forge=policy.spec.delivery.mode == "pull-request")
    report = read_status(policy, deps)
    click.echo(f"policy {report.policy} at {report.head[:12]}")
    for image in report.images:
        click.echo(f"  {image.name}: running {', '.join(image.current)}; newest allowed {_newest_text(image)}")
        for tag, reason in image.quarantined:
            click.echo(f"    quarantined {tag}: {reason}")
        for resource, tag in image.quarantined_targets:
            click.echo(f"    ! {resource} runs quarantined tag {tag}")
        for tag, reason in image.held:
            click.echo(f"    held back {tag}: {reason}")
        if image.note:
            click.echo(f"    {image.note}")
        if image.lookup_error:
            click.echo(f"    {image.lookup_error}")
    left_out = {problem.blocks for problem in report.problems if problem.blocks is not None}
    for canary in policy.spec.canaries:
        if canary.name in left_out:
            continue
        click.echo(f"  canary {canary.name}:")
        for line in render_canary(inspect_canary(policy, deps, canary.name), policy.name):
            click.echo(f"    {line}")
    for pull in report.pulls:
        click.echo(f"  open pull request #{pull.number} {pull.url} {pull.title}")
    for problem in report.problems:
        click.echo(f"  problem: {problem}")
    failed = [image for image in report.images if image.lookup_error]
    if failed:
        retry = any(image.lookup_retryable for image in failed)
        sys.exit(max(LOOKUP_FAILED_EXIT if retry else LOOKUP_REFUSED_EXIT, SET_ASIDE_EXIT if left_out else 0))
    if left_out:
        sys.exit(SET_ASIDE_EXIT)


def _newest_text(image: ImageStatus) -> str:
    """The tag a cycle would pick (with the digest it pins), or why there is none."""
    if image.lookup_error:
        return "unknown (tag lookup failed)"
    if image.newest:
        return f"{image.newest}@{image.digest}" if image.digest else image.newest
    if image.vetted and image.held and not image.quarantined:
        return "(none qualifies; the targets stay as they are)"
    if image.quarantined:
        return "(none newer than a quarantined tag)"
    return "(no matching tag)"


@click.command()
@click.argument("name")
@policy_option
@policies_option
@click.option(
    "--further",
    is_flag=True,
    help="Revert the newest change that still stands even when a newer one is already rolled back.",
)
def rollback(name: str, policy_name: str, policies_dir: Path, further: bool) -> None:
    """Revert the newest gitbot change for NAME (an image or canary) and quarantine what it introduced.

    Run again after it landed, it says so and changes nothing; --further goes one change further back.
    """
    policy = find_policy(policies_dir, policy_name)
    delivery = run_rollback(policy, build_deps(policy, need_forge=True), name, further=further)
    announce_command(policy, "rollback", name, delivery)
    if delivery.outcome == "unchanged":
        click.echo(delivery.subject)
        return
    click.echo(f"{delivery.outcome:<9} {delivery.ref}  {delivery.subject}")
