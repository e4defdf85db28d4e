"""Test-run set-up shared by every folder: the inputs that are not in the repository.

When the run starts, a missing input (the real-world corpus, the CRD schemas, GitHub's OpenAPI
description) is named in one line with where to put it; tests marked `shared("<name>")` then fail at
set-up with that line, without a traceback.
"""

from __future__ import annotations

import pytest

from tests.shared import missing_inputs_line, require


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "shared(*names): needs the named inputs from shared/ (corpus, schemas, github)")


def pytest_sessionstart(session: pytest.Session) -> None:
    line = missing_inputs_line()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if line is not None and reporter is not None:
        reporter.write_line(line, yellow=True, bold=True)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("shared"):
        for name in marker.args:
            require(name)
