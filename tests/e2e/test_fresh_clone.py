"""The suite in a copy of the repository without `shared/` beside it: one line names what is missing at the
start, and each test that needs it fails with that line alone, never with a traceback or a silent skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.shared import REPO

# A test of each kind of input: the corpus, the CRD schemas and GitHub's OpenAPI description.
NEEDS_INPUTS = [
    "tests/corpus/test_corpus.py::test_corpus_is_present",
    "tests/corpus/test_corpus.py::test_fast_locator_finds_exactly_what_ruamel_finds",
    "tests/unit/test_edit_properties.py::test_weight_edits_keep_the_sum_and_the_schema",
    "tests/contract/github/test_github_forge.py::test_validator_matches_refs_with_slashes",
]


def fresh_copy(target: Path) -> Path:
    """The repository's tracked and new (not ignored) files, copied to `target` as a clone would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_a_fresh_clone_names_each_missing_input_and_fails_only_the_tests_that_need_it(tmp_path: Path) -> None:
    copy = fresh_copy(tmp_path / "clone" / "repo")
    assert not any((parent / "shared").exists() for parent in copy.parents)
    env = {k: v for k, v in os.environ.items() if k not in ("GITBOT_GITHUB_OPENAPI", "PYTHONPATH")}
    env["PYTHONPATH"] = str(copy)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *NEEDS_INPUTS],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout
    first = out.splitlines()[0]
    assert first.startswith("gitbot tests: missing inputs, the tests that need them fail: "), out
    shared = copy.parent / "shared"
    for where in (shared / "corpus", shared / "schemas", shared / "github" / "api.github.com.json"):
        assert str(where) in first, first
    assert "make test-inputs" in first
    assert done.returncode == 1, out
    assert "Traceback" not in out and "AssertionError" not in out and "skipped" not in out, out
    assert "4 errors" in out, out
    # pytest shortens the summary lines to the terminal's width except where it detects CI, so only the
    # per-test error sections, one line each, are counted.
    reasons = [line for line in out.splitlines() if line.startswith("missing test input: ")]
    assert len(reasons) == 4, out
