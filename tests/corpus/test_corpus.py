"""The engine over every file of the shared corpus of real manifests: find every target, set every one of
them to a new value (tags that need quoting included, weights keeping their sum), and prove that the
output equals the input outside the replaced tokens and loads as the input with exactly those values
changed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from gitbot import yamlio
from gitbot.domain import Assignment, Target
from gitbot.edits import apply_assignments
from gitbot.manifests import scan_text
from tests.crd_schemas import validator_for
from tests.shared import shared_dir

CORPUS = shared_dir("corpus")
FILES = sorted(p for p in CORPUS.iterdir() if p.suffix in (".yaml", ".yml")) if CORPUS.is_dir() else []
# Without the corpus each test still runs once, and fails at set-up naming it (never an empty, skipped set).
CASES: list[object] = [*FILES] or [pytest.param(CORPUS, id="corpus-missing")]
pytestmark = pytest.mark.shared("corpus")

# New values chosen so that many of them would load as something else if written plain.
TAGS = ("1.10", "010", "true", "1e3", "null", "~", "v2.0.0-rc.1", "yes", "2024-01-02", "0x1F")
IMAGES = ("registry.example:5000/team/app:1.10", "app:010", "ghcr.io/acme/app@sha256:" + "b" * 64)
NAMES = ("registry.example/new/name", "on", "- dash")
DIGESTS = ("sha256:" + "c" * 64,)


def new_value(target: Target, n: int) -> str:
    pool = {"tag": TAGS, "image": IMAGES, "name": NAMES, "digest": DIGESTS}[target.kind]
    value = pool[n % len(pool)]
    return value if value != target.value else value + "-x"


def weight_assignments(targets: list[Target]) -> list[Assignment]:
    """Move every route with more than one weight: weights summing to 100 are redistributed, others +1."""
    groups: dict[tuple[int, str, int | None], list[Target]] = {}
    for t in targets:
        groups.setdefault((t.document, t.resource, t.route), []).append(t)
    out: list[Assignment] = []
    for group in groups.values():
        old = [int(t.value) for t in group]
        if sum(old) == 100:
            if len(group) < 2:
                continue
            new = list(reversed(old)) if len(set(old)) > 1 else [100 - 7 * (len(old) - 1)] + [7] * (len(old) - 1)
        else:
            new = [w + 1 for w in old]
        out += [Assignment(t.document, t.pointer, str(w)) for t, w in zip(group, new, strict=True)]
    return out


@dataclass
class FileResult:
    name: str
    text: str
    targets: list[Target]
    assignments: list[Assignment] = field(default_factory=list)
    output: str = ""


def exercise(path: Path) -> FileResult:
    text = path.read_bytes().decode("utf-8")
    targets = scan_text(path.name, text)
    result = FileResult(path.name, text, targets)
    plain = [t for t in targets if t.kind != "weight"]
    result.assignments = [Assignment(t.document, t.pointer, new_value(t, i)) for i, t in enumerate(plain)]
    result.assignments += weight_assignments([t for t in targets if t.kind == "weight"])
    result.output = apply_assignments(text, result.assignments, source=path.name)
    return result


@pytest.fixture(scope="module")
def results() -> dict[str, FileResult]:
    return {p.name: exercise(p) for p in FILES}


def outside_tokens(text: str, assignments: list[Assignment]) -> list[str]:
    """The text between the assigned tokens, found by parsing (independently of how edits splices)."""
    docs = yamlio.parse(text, "check")
    spans = []
    for a in assignments:
        node = yamlio.resolve(docs[a.document].root, a.pointer)
        assert node is not None
        spans.append((node.start, node.end))
    pieces, cursor = [], 0
    for start, end in sorted(spans):
        pieces.append(text[cursor:start])
        cursor = end
    pieces.append(text[cursor:])
    return pieces


def loaded(text: str) -> list[Any]:
    return list(YAML(typ="safe", pure=True).load_all(text))


def set_at(obj: Any, pointer: str, value: Any) -> None:
    tokens = yamlio.split_pointer(pointer)
    for token in tokens[:-1]:
        obj = obj[int(token)] if isinstance(obj, list) else obj[token]
    if isinstance(obj, list):
        obj[int(tokens[-1])] = value
    else:
        obj[tokens[-1]] = value


def get_at(obj: Any, pointer: str) -> Any:
    for token in yamlio.split_pointer(pointer):
        obj = obj[int(token)] if isinstance(obj, list) else obj[token]
    return obj


def changed_files(results: dict[str, FileResult]) -> Iterator[FileResult]:
    return (r for r in results.values() if r.assignments)


def test_corpus_is_present() -> None:
    assert len(FILES) >= 150, f"expected the shared corpus at {CORPUS}"


@pytest.mark.parametrize("path", CASES, ids=[p.name[:80] for p in FILES] or None)
def test_every_target_is_set_with_byte_and_parsed_fidelity(path: Path, results: dict[str, FileResult]) -> None:
    r = results[path.name]
    if not r.assignments:
        assert r.output == r.text
        return
    assert r.output != r.text
    # Byte fidelity: identical outside the replaced tokens, located by parsing each side on its own.
    assert outside_tokens(r.text, r.assignments) == outside_tokens(r.output, r.assignments)
    # Parsed fidelity: the output loads as the input with exactly the assigned values replaced.
    before, after = loaded(r.text), loaded(r.output)
    for a in r.assignments:
        got = get_at(after[a.document], a.pointer)
        assert str(got) == a.value if isinstance(got, int) and not isinstance(got, bool) else got == a.value
        set_at(before[a.document], a.pointer, got)
    assert before == after
    # The scanner still finds the same targets, now with the new values.
    rescanned = {(t.document, t.pointer): t.value for t in scan_text(path.name, r.output)}
    for a in r.assignments:
        assert rescanned[(a.document, a.pointer)] == a.value


@pytest.mark.parametrize("path", CASES, ids=[p.name[:80] for p in FILES] or None)
def test_fast_locator_finds_exactly_what_ruamel_finds(path: Path) -> None:
    text = path.read_bytes().decode("utf-8")
    assert scan_text(path.name, text) == scan_text(path.name, text, fast=False)


def test_corpus_figures(results: dict[str, FileResult], capsys: pytest.CaptureFixture[str]) -> None:
    files = [r for r in results.values() if r.targets]
    targets = sum(len(r.targets) for r in results.values())
    assigned = sum(len(r.assignments) for r in results.values())
    weights = sum(1 for r in results.values() for a in r.assignments if a.pointer.endswith("/weight"))
    quoted = sum(1 for r in changed_files(results) for a in r.assignments if not yamlio.loads_as_string_plain(a.value))
    with capsys.disabled():
        print(
            f"\ncorpus: {len(results)} files read, {len(files)} with targets, {targets} targets found, "
            f"{assigned} values set ({weights} weights, {quoted} needing quotes)"
        )
    # Every target was given a new value except a lone weight of 100, which must stay 100.
    for r in results.values():
        assigned_here = {(a.document, a.pointer) for a in r.assignments}
        for t in r.targets:
            if (t.document, t.pointer) not in assigned_here:
                alone = [u for u in r.targets if (u.document, u.resource, u.route) == (t.document, t.resource, t.route)]
                assert t.kind == "weight" and t.value == "100" and alone == [t], f"{r.name}: {t.pointer} not set"
    assert len(files) >= 140
    assert targets >= 300
    assert weights >= 20
    assert quoted >= 50


def test_every_written_route_validates_against_its_crd_schema(results: dict[str, FileResult]) -> None:
    """Each VirtualService and HTTPRoute document the engine changed still satisfies its CRD schema."""
    checked = 0
    for r in changed_files(results):
        touched = {a.document for a in r.assignments if a.pointer.endswith("/weight")}
        after = loaded(r.output)
        for index in sorted(touched):
            validator = validator_for(after[index])
            assert validator is not None, f"{r.name} document {index} is not a known route kind"
            errors = [e.message for e in validator.iter_errors(after[index])]
            assert errors == [], f"{r.name} document {index}: {errors[:3]}"
            checked += 1
    assert checked >= 10


def test_schema_check_catches_a_broken_weight() -> None:
    """The validators are not vacuous: a weight outside the schema's type is reported."""
    doc = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "x"},
        "spec": {"http": [{"route": [{"destination": {"host": "a"}, "weight": "ten"}]}]},
    }
    validator = validator_for(doc)
    assert validator is not None
    assert list(validator.iter_errors(doc))
