"""The subcommands of `gitbot`, one module each; the composition root where adapters are built.

`COMMANDS` names where each subcommand lives (`module:attribute`); the CLI imports a module only when its
command runs (or help lists them all), so `gitbot plan` never loads the daemon's scheduler or the GitHub client.
"""

from __future__ import annotations

COMMANDS: dict[str, str] = {
    "demo": "gitbot.commands.demo:demo",
    "scan": "gitbot.commands.scan:scan",
    "set": "gitbot.commands.set:set_command",
    "tags": "gitbot.commands.tags:tags",
    "validate": "gitbot.commands.validate:validate",
    "plan": "gitbot.commands.cycle:plan",
    "once": "gitbot.commands.cycle:once",
    "status": "gitbot.commands.cycle:status",
    "rollback": "gitbot.commands.cycle:rollback",
    "analyze": "gitbot.commands.canary:analyze",
    "promote": "gitbot.commands.canary:promote",
    "pause": "gitbot.commands.canary:pause",
    "resume": "gitbot.commands.canary:resume",
    "run": "gitbot.commands.run:run",
}
