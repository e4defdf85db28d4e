"""Splicing values into YAML text: quoting, refusals, weight sums, and nothing else touched."""

from __future__ import annotations

import pytest

from gitbot.domain import Assignment
from gitbot.edits import apply_assignments, double_quoted, plain_is_safe
from gitbot.errors import EditError

POD = """\
apiVersion: v1
kind: Pod  # trailing comment
metadata:
  name: web
spec:
  containers:
    - name: app
      image: nginx:1.25   # keep me
      args: ['--a', "--b"]
"""

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app}
spec:
  http:
    - route:
        - destination: {host: app, subset: ga}
          weight: 90
        - destination: {host: app, subset: canary}
          weight: 10
"""


def edit(text: str, pointer: str, value: str, document: int = 0) -> str:
    return apply_assignments(text, [Assignment(document, pointer, value)], source="f.yaml")


def test_plain_value_is_replaced_in_place() -> None:
    out = edit(POD, "/spec/containers/0/image", "nginx:1.27")
    assert out == POD.replace("nginx:1.25", "nginx:1.27")


@pytest.mark.parametrize("value", ["1.10", "010", "true", "1e3", "null", "~", "a: b", "a #b", "-", "@x", "*x"])
def test_values_that_would_load_differently_are_quoted(value: str) -> None:
    out = edit(POD, "/spec/containers/0/image", value)
    assert out == POD.replace("nginx:1.25", double_quoted(value))


def test_quoting_style_is_kept() -> None:
    out = edit(POD, "/spec/containers/0/args/0", "it's")
    assert "args: ['it''s', \"--b\"]" in out
    out = edit(POD, "/spec/containers/0/args/1", 'say "hi"')
    assert 'args: [\'--a\', "say \\"hi\\""]' in out


def test_flow_context_quotes_flow_indicators() -> None:
    out = edit("a: [x, y]\n", "/a/0", "p,q")
    assert out == 'a: ["p,q", y]\n'


def test_integer_stays_plain_and_non_canonical_number_is_refused_as_type_change() -> None:
    assert edit(VS, "/spec/http/0/route/0/weight", "90") == VS
    out = apply_assignments(
        VS,
        [
            Assignment(0, "/spec/http/0/route/0/weight", "70"),
            Assignment(0, "/spec/http/0/route/1/weight", "30"),
        ],
        source="vs.yaml",
    )
    assert out == VS.replace("weight: 90", "weight: 70").replace("weight: 10", "weight: 30")


def test_weights_that_summed_to_100_must_still_do() -> None:
    with pytest.raises(EditError, match="sum to 120, not 100") as info:
        edit(VS, "/spec/http/0/route/1/weight", "30")
    assert "f.yaml 0:/spec/http/0/route/1/weight" in info.value.one_line()


def test_weight_must_be_an_integer() -> None:
    with pytest.raises(EditError, match="not a non-negative integer"):
        edit(VS, "/spec/http/0/route/1/weight", "ten")


@pytest.mark.parametrize(
    ("text", "pointer", "message"),
    [
        (POD, "/spec/nope", "no value at this pointer"),
        (POD, "/spec/containers", "not a scalar"),
        ("a: &x 1\nb: *x\n", "/a", "shared through an anchor"),
        ("a: &x 1\nb: *x\n", "/b", "alias of &x"),
        ("a: |\n  text\n", "/a", "block scalars"),
        ("a:\n", "/a", "empty"),
        ("a: [1\n", "/a", "does not parse"),
        (POD, "spec", "must start with '/'"),
    ],
)
def test_refusals_are_one_line_errors(text: str, pointer: str, message: str) -> None:
    with pytest.raises(EditError, match=message) as info:
        edit(text, pointer, "new")
    assert "\n" not in info.value.one_line()


def test_unknown_document_is_refused() -> None:
    with pytest.raises(EditError, match="no document 3"):
        edit(POD, "/kind", "x", document=3)


def test_conflicting_assignments_are_refused() -> None:
    with pytest.raises(EditError, match="assigned twice"):
        apply_assignments(POD, [Assignment(0, "/kind", "A"), Assignment(0, "/kind", "B")], source="f.yaml")


def test_crlf_bom_and_missing_newline_survive() -> None:
    text = "\ufeffa: 1.0.0\r\nb: 'x'   \r\nc: end"
    out = apply_assignments(text, [Assignment(0, "/a", "2.0.0"), Assignment(0, "/c", "fin")], source="f")
    assert out == "\ufeffa: 2.0.0\r\nb: 'x'   \r\nc: fin"


def test_multi_document_edit_touches_only_its_document() -> None:
    text = "a: 1.0\n---\na: v1\n...\n---\na: v1\n"
    assert edit(text, "/a", "v2", document=2) == "a: 1.0\n---\na: v1\n...\n---\na: v2\n"


def test_no_assignments_and_same_value_leave_text_alone() -> None:
    assert apply_assignments(POD, [], source="f") is POD
    assert edit(POD, "/metadata/name", "web") == POD


@pytest.mark.parametrize(
    ("value", "flow", "safe"),
    [
        ("abc", False, True),
        ("a,b", False, True),
        ("a,b", True, False),
        ("-a", False, True),
        ("- a", False, False),
        (":x", False, True),
        (":x", True, False),
        ("?x", True, False),
    ],
)
def test_plain_safety(value: str, flow: bool, safe: bool) -> None:
    assert plain_is_safe(value, flow=flow) is safe


def test_control_characters_are_escaped() -> None:
    assert double_quoted('a\tb\\"\x07') == '"a\\tb\\\\\\"\\x07"'


def test_properties_stay_in_front_of_the_new_value() -> None:
    assert edit("a: !!str 1.0\n", "/a", "2.0") == "a: !!str 2.0\n"
    assert edit("a: &only v1  # c\n", "/a", "v2") == "a: &only v2  # c\n"


def test_multi_line_scalars_become_one_token() -> None:
    assert edit("a: 'one\n  two'\nb: x\n", "/a", "three") == "a: 'three'\nb: x\n"
    assert edit("a: one\n  two\nb: x\n", "/a", "three") == "a: three\nb: x\n"


@pytest.mark.parametrize(("value", "token"), [("35", "35"), ("v35", "v35"), ("1.10", '"1.10"'), ("035", '"035"')])
def test_numeric_tag_becomes_whatever_loads_as_the_given_text(value: str, token: str) -> None:
    assert edit("tag: 34\n", "/tag", value) == f"tag: {token}\n"


PROPERTY_APART = """\
a: &x # note
  value
b: !!str # note2
  v2
c: &y

  v3
d: &z
  # inner
  v4
"""


def test_a_value_apart_from_its_properties_keeps_the_comments_between() -> None:
    out = apply_assignments(
        PROPERTY_APART,
        [Assignment(0, f"/{key}", f"new-{key}") for key in "abcd"],
        source="f.yaml",
    )
    assert out == (
        PROPERTY_APART.replace("  value\n", "  new-a\n")
        .replace("  v2\n", "  new-b\n")
        .replace("  v3\n", "  new-c\n")
        .replace("  v4\n", "  new-d\n")
    )


@pytest.mark.parametrize("odd", ["²", "١٠"])
def test_a_weight_written_in_other_digits_is_not_counted(odd: str) -> None:
    text = VS.replace("weight: 10", f"weight: {odd}")
    # Only the ASCII 90 counts, so the route did not sum to 100 before and any new weight is accepted.
    out = edit(text, "/spec/http/0/route/0/weight", "80")
    assert out == text.replace("weight: 90", "weight: 80")


def test_a_value_with_a_lone_surrogate_is_refused() -> None:
    # What `0:/x=$'\xff'` becomes on a command line: YAML parsers refuse the `\udcff` escape it would need.
    with pytest.raises(EditError, match="U\\+DCFF"):
        edit(POD, "/spec/containers/0/image", "nginx:\udcff")


def test_a_flow_item_set_to_a_colon_or_question_mark_word_is_quoted() -> None:
    text = "f: [p, q]\ng: {k: v}\n"
    assert (
        apply_assignments(text, [Assignment(0, "/f/0", ":x"), Assignment(0, "/g/k", "?x")], source="f.yaml")
        == 'f: [":x", q]\ng: {k: "?x"}\n'
    )


def test_tabs_that_separate_tokens_are_kept_and_do_not_block_an_edit() -> None:
    text = 'a: x\t# c\nb: [\tp,\tq\t]\nc: "y"\t\nd:\tz\ne: |\n  keep\ttab\t\nf: &A\tv\t\n'
    out = apply_assignments(
        text,
        [Assignment(0, "/a", "1.10"), Assignment(0, "/b/1", "w"), Assignment(0, "/c", "u"), Assignment(0, "/f", "new")],
        source="f.yaml",
    )
    assert out == 'a: "1.10"\t# c\nb: [\tp,\tw\t]\nc: "u"\t\nd:\tz\ne: |\n  keep\ttab\t\nf: &A\tnew\t\n'


def test_a_value_under_an_explicit_core_tag_must_fit_the_tag() -> None:
    text = "a: !!int 5\nb: !!str 5\nc: !!bool true\n"
    with pytest.raises(EditError, match="does not fit its tag !!int"):
        edit(text, "/a", "abc")
    with pytest.raises(EditError, match="does not fit its tag !!bool"):
        edit(text, "/c", "maybe")
    assert edit(text, "/a", "6") == "a: !!int 6\nb: !!str 5\nc: !!bool true\n"
    assert edit(text, "/b", "1.10") == "a: !!int 5\nb: !!str 1.10\nc: !!bool true\n"
