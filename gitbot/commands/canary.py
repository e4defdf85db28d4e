"""`gitbot analyze`, `gitbot promote`, `gitbot pause` and `gitbot resume`: a canary, by hand."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gitbot.commands.announce import announce_command
from gitbot.commands.canary_view import check_json, render_canary, status_of
from gitbot.commands.compose import build_deps, policies_option
from gitbot.config import Policy, find_policy, load_policies
from gitbot.errors import UsageError
from gitbot.logs import process_masker
from gitbot.manual import inspect_canary, mark_paused, weight_out_of_range
from gitbot.manual import promote as promote_canary


def _policy_for(policies_dir: Path, policy_name: str | None, canary: str) -> Policy:
    """The named policy, or the only policy that has a canary called `canary`."""
    if policy_name:
        return find_policy(policies_dir, policy_name)
    owners = [p for p in load_policies(policies_dir) if any(c.name == canary for c in p.spec.canaries)]
    if not owners:
        raise UsageError(f"no policy in {policies_dir} has a canary named {canary!r}")
    if len(owners) > 1:
        found = ", ".join(p.name for p in owners)
        raise UsageError(f"canary {canary!r} is in {len(owners)} policies ({found}); name one with --policy")
    return owners[0]


policy_choice = click.option("--policy", "policy_name", default=None, help="Policy name (default: the one with NAME).")


@click.command()
@click.argument("name")
@policy_choice
@policies_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def analyze(name: str, policy_name: str | None, policies_dir: Path, as_json: bool) -> None:
    """Run canary NAME's analysis now and print each check and the verdict."""
    policy = _policy_for(policies_dir, policy_name, name)
    report = inspect_canary(policy, build_deps(policy, need_forge=False), name)
    analysis = report.observation.analysis
    if as_json:
        payload = {
            "canary": name,
            "policy": policy.name,
            "route": report.route,
            "weight": report.weight,
            "step": report.step,
            "paused": report.paused or None,
            "status": status_of(report).split(" ", 1)[1],
            "message": report.decision.reason if report.decision else None,
            "steps": list(report.steps),
            "images": {"stable": list(report.stable_images), "canary": list(report.canary_images)},
            "share": report.observation.share,
            "verdict": analysis.verdict if analysis else None,
            "summary": analysis.summary if analysis else None,
            "window": [analysis.window_start.isoformat(), analysis.window_end.isoformat()] if analysis else None,
            "checks": [check_json(c) for c in (analysis.checks if analysis else ())],
        }
        # Details and the summary may quote a server's error body: masked like every other output.
        click.echo(json.dumps(process_masker().mask_value(payload), indent=2))
        return
    for line in render_canary(report, policy.name):
        click.echo(process_masker().mask(line))


@click.command()
@click.argument("name")
@policy_choice
@policies_option
@click.option(
    "--to", "to_weight", type=int, default=None, help="Move to this weight, above the canary's current weight (1..100)."
)
def promote(name: str, policy_name: str | None, policies_dir: Path, to_weight: int | None) -> None:
    """Make canary NAME's next step (or move it to --to) now, as a commit or pull request."""
    # Checked here rather than by click's IntRange, whose error is a usage screen, not one line.
    if to_weight is not None and not 0 <= to_weight <= 100:
        raise weight_out_of_range(to_weight)
    policy = _policy_for(policies_dir, policy_name, name)
    delivery = promote_canary(policy, build_deps(policy, need_forge=True), name, to_weight)
    announce_command(policy, "promote", name, delivery)
    if delivery.outcome == "unchanged":
        click.echo(delivery.subject)
        return
    click.echo(f"{delivery.outcome:<9} {delivery.ref}  {delivery.subject}")


def _marker(name: str, policy_name: str | None, policies_dir: Path, reason: str, *, paused: bool) -> None:
    policy = _policy_for(policies_dir, policy_name, name)
    delivery = mark_paused(policy, build_deps(policy, need_forge=False), name, paused=paused, why=reason)
    announce_command(policy, "pause" if paused else "resume", name, delivery, reason)
    if delivery.outcome == "unchanged":
        click.echo(delivery.subject)
        return
    click.echo(f"{'paused' if paused else 'resumed'} {name} ({policy.name}) at {delivery.ref}")


@click.command()
@click.argument("name")
@policy_choice
@policies_option
@click.option("--reason", default="", help="Why, recorded in the marker commit.")
def pause(name: str, policy_name: str | None, policies_dir: Path, reason: str) -> None:
    """Hold canary NAME where it is (a marker commit in git) until `gitbot resume`."""
    _marker(name, policy_name, policies_dir, reason, paused=True)


@click.command()
@click.argument("name")
@policy_choice
@policies_option
@click.option("--reason", default="", help="Why, recorded in the marker commit.")
def resume(name: str, policy_name: str | None, policies_dir: Path, reason: str) -> None:
    """Release canary NAME after a pause (or after a person reverted one of its steps)."""
    _marker(name, policy_name, policies_dir, reason, paused=False)
