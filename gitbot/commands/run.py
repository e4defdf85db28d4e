"""`gitbot run`: the daemon. Loads every policy, masks their secrets in all logs, runs them on schedule.

This module only wires things together: policies (`gitbot.config`), logging (`gitbot.logs`), the cycle
runner (`gitbot.commands.runner`) and the scheduler with its HTTP endpoints (`gitbot.service`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import click

from gitbot.commands.compose import SharedAdapters, policies_option
from gitbot.commands.runner import CycleRunner
from gitbot.config import load_policies
from gitbot.logs import configure_logging, process_masker, remember_secrets
from gitbot.service import DEFAULT_MAX_CONCURRENT_CYCLES, ServiceMetrics, parse_shard, run_service, shard_policies

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
@click.option(
    "--shard",
    envvar="GITBOT_SHARD",
    default=None,
    help="Run only this replica's share of the policies: I/N (0-based), or auto (I from a StatefulSet pod "
    "name like gitbot-2 in HOSTNAME, N from --shards). Default: every policy.",
)
@click.option(
    "--shards",
    envvar="GITBOT_SHARDS",
    default=None,
    help="The number of shards, for --shard auto.",
)
@click.option(
    "--max-concurrent-cycles",
    type=click.IntRange(1, 256),
    envvar="GITBOT_MAX_CONCURRENT_CYCLES",
    default=DEFAULT_MAX_CONCURRENT_CYCLES,
    show_default=True,
    help="Cycles running at once; the other policies' ticks wait for a free slot.",
)
def run(
    policies_dir: Path,
    port: int,
    host: str,
    once_at_start: bool,
    log_format: str,
    log_level: str,
    shard: str | None,
    shards: str | None,
    max_concurrent_cycles: int,
) -> None:
    """Run every policy on its schedule until SIGTERM/SIGINT; serve /metrics, /healthz and /readyz."""
    env = dict(os.environ)
    # Before the policies load: a wrong shard is a usage error whatever the policies say.
    which = parse_shard(shard, count=shards, hostname=env.get("HOSTNAME"))
    policies = shard_policies(load_policies(policies_dir), which)
    masker = process_masker()
    for policy in policies:
        remember_secrets(policy, env)
    configure_logging(masker, json=LOG_FORMATS[log_format], level=log_level.upper())
    metrics = ServiceMetrics()
    stop = threading.Event()
    # Policies naming the same registry share its client, so each tag list is fetched once for all of them.
    shared = SharedAdapters()
    runner = CycleRunner(
        policies, env=env, stop=stop, masker=masker, record_request=metrics.api_request, build=shared.build_deps
    )
    run_service(
        policies,
        runner,
        port=port,
        host=host,
        stop_event=stop,
        metrics=metrics,
        masker=masker,
        run_at_start=once_at_start,
        max_concurrent_cycles=max_concurrent_cycles,
        shard=which,
    )
