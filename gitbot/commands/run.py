"""`gitbot run`: the daemon. Loads every policy, masks their secrets in all logs, runs them on schedule.

This module only wires things together: policies (`gitbot.config`), logging (`gitbot.logs`), the cycle
runner (`gitbot.commands.runner`) and the scheduler with its HTTP endpoints (`gitbot.service`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import click

from gitbot.commands.compose import policies_option
from gitbot.commands.runner import CycleRunner
from gitbot.config import load_policies
from gitbot.logs import configure_logging, process_masker, remember_secrets
from gitbot.service import ServiceMetrics, run_service

LOG_FORMATS = {"auto": None, "json": True, "text": False}


@click.command()
@policies_option
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port of /metrics, /healthz and /readyz.",
)
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")  # noqa: S104
@click.option(
    "--once-at-start/--no-once-at-start",
    default=True,
    show_default=True,
    help="Run interval policies right after start instead of one interval later.",
)
@click.option(
    "--log-format",
    type=click.Choice(sorted(LOG_FORMATS)),
    default="auto",
    show_default=True,
    help="auto: JSON unless stderr is a terminal.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning"]),
    default="info",
    show_default=True,
    help="debug adds the scheduler's and libraries' own messages.",
)
def run(policies_dir: Path, port: int, host: str, once_at_start: bool, log_format: str, log_level: str) -> None:
    """Run every policy on its schedule until SIGTERM/SIGINT; serve /metrics, /healthz and /readyz."""
    env = dict(os.environ)
    policies = load_policies(policies_dir)
    masker = process_masker()
    for policy in policies:
        remember_secrets(policy, env)
    configure_logging(masker, json=LOG_FORMATS[log_format], level=log_level.upper())
    metrics = ServiceMetrics()
    stop = threading.Event()
    runner = CycleRunner(policies, env=env, stop=stop, masker=masker, record_request=metrics.api_request)
    run_service(
        policies,
        runner,
        port=port,
        host=host,
        stop_event=stop,
        metrics=metrics,
        masker=masker,
        run_at_start=once_at_start,
    )
