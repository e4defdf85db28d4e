"""Property tests: generated documents with comments, quoting styles, flow collections and awkward line
endings, random edits with arbitrary new values; the result must differ from the input in exactly the
edited tokens and load with exactly the edited values changed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from gitbot import yamlio
from gitbot.domain import Assignment
from gitbot.edits import apply_assignments, plain_is_safe
from gitbot.errors import EditError
from tests.crd_schemas import validator_for

WORDS = st.from_regex(r"[a-z][a-z0-9./:-]{0,12}", fullmatch=True).filter(
    lambda w: yamlio.loads_as_string_plain(w) and plain_is_safe(w, flow=True)
)
COMMENTS = st.one_of(st.just(""), st.from_regex(r"[ -~\t]{0,20}", fullmatch=True).map(lambda c: f"  # {c}"))
NEW_VALUES = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=16),
    st.sampled_from(["1.10", "010", "true", "1e3", "null", "~", "- x", "a: b", "a #b", "{x}", "", " x", "'", '"']),
)


@st.composite
def scalar(draw: st.DrawFn) -> str:
    style = draw(st.sampled_from(["plain", "single", "double", "number"]))
    if style == "number":
        return str(draw(st.integers(0, 1000)))
    word = draw(WORDS)
    if style == "single":
        return "'" + word.replace("'", "''") + "'"
    return json.dumps(word) if style == "double" else word


@st.composite
def block(draw: st.DrawFn, indent: int, depth: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for i in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            lines.append(f"{pad}# note {i}")
        shape = draw(st.sampled_from(["scalar", "scalar", "map", "seq", "flow"] if depth < 2 else ["scalar"]))
        key = f"k{i}"
        if shape == "scalar":
            lines.append(f"{pad}{key}: {draw(scalar())}{draw(COMMENTS)}")
        elif shape == "map":
            lines.append(f"{pad}{key}:{draw(COMMENTS)}")
            lines.extend(draw(block(indent + 2, depth + 1)))
        elif shape == "seq":
            lines.append(f"{pad}{key}:")
            for _ in range(draw(st.integers(1, 3))):
                lines.append(f"{pad}  - {draw(scalar())}{draw(COMMENTS)}")
        else:
            items = [f"f{j}: {draw(scalar())}" for j in range(draw(st.integers(1, 3)))]
            lines.append(f"{pad}{key}: {{{', '.join(items)}}}{draw(COMMENTS)}")
    return lines


@st.composite
def stream(draw: st.DrawFn) -> str:
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    docs = ["\n".join(draw(block(0, 0))) for _ in range(draw(st.integers(1, 3)))]
    text = "\n---\n".join(docs)
    if draw(st.booleans()):
        text = "---\n" + text
    if draw(st.booleans()):
        text += "\n"
    text = text.replace("\n", eol)
    trailing = draw(st.sampled_from(["", "  "]))
    text = text.replace(f"{eol}", f"{trailing}{eol}") if trailing and "#" not in text else text
    return ("\ufeff" if draw(st.booleans()) else "") + text


def scalars(text: str) -> list[tuple[int, str, yamlio.Node]]:
    return [
        (doc.index, pointer, node)
        for doc in yamlio.parse(text, "gen")
        for pointer, node in yamlio.walk(doc.root)
        if node.kind == "scalar" and pointer
    ]


def loaded(text: str) -> list[Any]:
    return list(YAML(typ="safe", pure=True).load_all(text))


def at(obj: Any, pointer: str) -> Any:
    for token in yamlio.split_pointer(pointer):
        obj = obj[int(token)] if isinstance(obj, list) else obj[token]
    return obj


def put(obj: Any, pointer: str, value: Any) -> None:
    tokens = yamlio.split_pointer(pointer)
    parent = at(obj, "".join(f"/{yamlio.escape_token(t)}" for t in tokens[:-1]))
    parent[int(tokens[-1]) if isinstance(parent, list) else tokens[-1]] = value


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_edits_change_exactly_the_edited_values(data: st.DataObject) -> None:
    text = data.draw(stream())
    targets = scalars(text)
    chosen = data.draw(st.lists(st.sampled_from(targets), min_size=1, max_size=4, unique_by=lambda t: t[:2]))
    assignments = [Assignment(doc, pointer, data.draw(NEW_VALUES)) for doc, pointer, _ in chosen]
    out = apply_assignments(text, assignments, source="gen")

    # Byte level: outside the edited tokens nothing moved.
    before_nodes = {(d, p): n for d, p, n in targets}
    after_nodes = {(d, p): n for d, p, n in scalars(out)}
    spans_before = sorted(
        (before_nodes[(a.document, a.pointer)].start, before_nodes[(a.document, a.pointer)].end) for a in assignments
    )
    spans_after = sorted(
        (after_nodes[(a.document, a.pointer)].start, after_nodes[(a.document, a.pointer)].end) for a in assignments
    )

    def outside(s: str, spans: list[tuple[int, int]]) -> list[str]:
        cuts = [0] + [x for span in spans for x in span] + [len(s)]
        return [s[cuts[i] : cuts[i + 1]] for i in range(0, len(cuts), 2)]

    assert outside(text, spans_before) == outside(out, spans_after)

    # Loaded: the edited values are the new strings (or the same integer), all else equal.
    before, after = loaded(text), loaded(out)
    for a in assignments:
        got = at(after[a.document], a.pointer)
        assert (str(got) if isinstance(got, int) and not isinstance(got, bool) else got) == a.value
        put(before[a.document], a.pointer, got)
    assert before == after


@st.composite
def virtual_service(draw: st.DrawFn) -> tuple[str, list[int]]:
    count = draw(st.integers(2, 4))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=count - 1, max_size=count - 1)))
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    version = draw(st.sampled_from(["v1alpha3", "v1beta1", "v1"]))
    lines = [
        f"apiVersion: networking.istio.io/{version}",
        "kind: VirtualService",
        "metadata:",
        "  name: app",
        "spec:",
        "  hosts: [app]",
        "  http:",
        "    - route:",
    ]
    for i, w in enumerate(weights):
        lines += [
            f"        - destination: {{host: app, subset: s{i}}}",
            f"          weight: {w}{draw(COMMENTS)}",
        ]
    return "\n".join(lines) + "\n", weights


@pytest.mark.shared("schemas")
@settings(max_examples=40, deadline=None)
@given(vs=virtual_service(), data=st.data())
def test_weight_edits_keep_the_sum_and_the_schema(vs: tuple[str, list[int]], data: st.DataObject) -> None:
    text, old = vs
    new = data.draw(st.lists(st.integers(0, 100), min_size=len(old), max_size=len(old)))
    assignments = [Assignment(0, f"/spec/http/0/route/{i}/weight", str(w)) for i, w in enumerate(new)]
    if sum(new) != 100:
        try:
            apply_assignments(text, assignments, source="vs")
        except EditError as exc:
            assert "not 100" in exc.one_line()
        else:
            raise AssertionError("a weight change that breaks the sum of 100 was accepted")
        return
    out = apply_assignments(text, assignments, source="vs")
    doc = loaded(out)[0]
    assert [d["weight"] for d in doc["spec"]["http"][0]["route"]] == new
    validator = validator_for(doc)
    assert validator is not None and not list(validator.iter_errors(doc))
