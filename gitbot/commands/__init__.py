"""The subcommands of `gitbot`, one module each; the composition root where adapters are built.

`COMMANDS` names where each subcommand lives (`module:attribute`); the CLI imports a module only when its
command runs (or help lists them all), so `gitbot plan` never loads the daemon's scheduler or the GitHub client.
"""

from __future__ import annotations

import importlib
import sys
import types

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

_HTTPX_COMMAND_LINE = "httpx._main"


def _httpx_command_line_on_demand() -> None:
    """Keep httpx's own command-line client out of gitbot's start-up.

    `import httpx` imports `httpx._main` (click, rich and pygments: about 30 ms) whenever those are installed,
    for the `httpx` console script only. Before httpx is first imported, a stand-in takes that module's place;
    its `main` loads the real client, so nothing is lost.
    """
    if "httpx" in sys.modules or _HTTPX_COMMAND_LINE in sys.modules:
        return
    stand_in = types.ModuleType(_HTTPX_COMMAND_LINE)

    def main() -> None:
        del sys.modules[_HTTPX_COMMAND_LINE]
        importlib.import_module(_HTTPX_COMMAND_LINE).main()

    stand_in.__dict__["main"] = main
    sys.modules[_HTTPX_COMMAND_LINE] = stand_in


_httpx_command_line_on_demand()
