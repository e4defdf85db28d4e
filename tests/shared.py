"""Where the test inputs that are not in the repository live, and what a run says when one is missing.

The real-world corpus and the CRD schemas live in `shared/` next to the repository checkout (`<dir>/repo`
and `<dir>/shared`); a git worktree one level deeper also finds it, so the nearest ancestor that holds
`shared/<name>` wins. GitHub's OpenAPI description is also taken from `shared/github/` when it is there,
and otherwise from the copy `python -m tests.support.fetch_openapi` (run by `make test`) fetched from its
npm package into `.test-inputs/`.

A missing input is named in one line when the run starts, and each test that needs it fails with that
line alone (`require`): never a traceback, never a skip that would look like a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The fetched copy of GitHub's OpenAPI description (see tests/support/fetch_openapi.py); gitignored.
INPUTS_DIR = REPO / ".test-inputs"
OPENAPI_VERSION = "23.0.2"
OPENAPI_SHA256 = "829b4bebb19a53133289f7b0bc819f4f1118115821db2ca9f25e9ee995a7da2a"
FETCHED_OPENAPI = INPUTS_DIR / f"octokit-openapi-{OPENAPI_VERSION}" / "api.github.com.json"


def shared_dir(name: str) -> Path:
    """`shared/<name>` beside the repository (or beside one of its ancestors)."""
    primary = REPO / ".." / "shared" / name
    if primary.is_dir():
        return primary.resolve()
    for ancestor in REPO.parents:
        candidate = ancestor / "shared" / name
        if candidate.is_dir():
            return candidate
    return primary


def openapi_path() -> Path:
    """GitHub's description: `shared/github/api.github.com.json` when there, else the fetched copy."""
    shared = shared_dir("github") / "api.github.com.json"
    return shared if shared.is_file() else FETCHED_OPENAPI


@dataclass(frozen=True)
class SharedInput:
    name: str
    what: str
    how: str

    def path(self) -> Path:
        return openapi_path() if self.name == "github" else shared_dir(self.name)

    def present(self) -> bool:
        path = self.path()
        return path.is_file() if self.name == "github" else path.is_dir() and any(path.iterdir())


INPUTS = {
    "corpus": SharedInput("corpus", "the corpus of real-world manifests", "put it at {where}"),
    "schemas": SharedInput("schemas", "the Istio and Gateway API CRD schemas", "put them at {where}"),
    "github": SharedInput(
        "github",
        "GitHub's OpenAPI description",
        "run `make test-inputs` (it fetches the npm package @octokit/openapi) or put it at {where}",
    ),
}


def _where(item: SharedInput) -> str:
    if item.name == "github":
        return str((REPO.parent / "shared" / "github" / "api.github.com.json").resolve())
    return str((REPO.parent / "shared" / item.name).resolve())


def missing_message(name: str) -> str:
    """One line: what is missing and where to put it."""
    item = INPUTS[name]
    return f"missing test input: {item.what}; {item.how.format(where=_where(item))}"


def missing_inputs() -> list[str]:
    """The names of the inputs this checkout cannot find."""
    return [name for name, item in INPUTS.items() if not item.present()]


def missing_inputs_line() -> str | None:
    """The one line a run starts with when inputs are missing, naming each and where it goes."""
    missing = missing_inputs()
    if not missing:
        return None
    named = "; ".join(
        f"{INPUTS[name].what} ({INPUTS[name].how.format(where=_where(INPUTS[name]))})" for name in missing
    )
    return f"gitbot tests: missing inputs, the tests that need them fail: {named}"


def require(name: str) -> Path:
    """The path of input `name`; when it is missing, the calling test fails with one line saying so."""
    item = INPUTS[name]
    if not item.present():
        pytest.fail(missing_message(name), pytrace=False)
    return item.path()
