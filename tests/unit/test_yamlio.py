"""Parsing with positions: spans, styles, anchors, tags and the awkward bytes of real files."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gitbot import yamlio
from gitbot.errors import ManifestError


def scalar_at(text: str, pointer: str, document: int = 0) -> yamlio.Node:
    node = yamlio.resolve(yamlio.parse(text, "t.yaml")[document].root, pointer)
    assert node is not None and node.kind == "scalar"
    return node


@pytest.mark.parametrize(
    ("text", "pointer", "token", "style"),
    [
        ("a: plain\n", "/a", "plain", "plain"),
        ("a: 'single'' q'\n", "/a", "'single'' q'", "single"),
        ('a: "dou\\"ble"\n', "/a", '"dou\\"ble"', "double"),
        ("a: |\n  block\n", "/a", "|\n  block\n", "literal"),
        ("a: >-\n  folded\n", "/a", ">-\n  folded\n", "folded"),
        ("a: [x, {b: 'y'}]\n", "/a/1/b", "'y'", "single"),
    ],
)
def test_span_covers_exactly_the_value_token(text: str, pointer: str, token: str, style: str) -> None:
    node = scalar_at(text, pointer)
    assert text[node.start : node.end] == token
    assert node.style == style


def test_bom_crlf_tabs_and_missing_final_newline_keep_offsets() -> None:
    text = '\ufeffkind: Pod\r\nspec:\r\n  image: "x:1" #\tc\r\n  tag: v1'
    node = scalar_at(text, "/spec/image")
    assert text[node.start : node.end] == '"x:1"'
    assert (node.line, node.column) == (2, 9)
    last = scalar_at(text, "/spec/tag")
    assert text[last.start : last.end] == "v1" and last.end == len(text)


def test_documents_are_counted_with_markers_and_empty_documents() -> None:
    text = "%YAML 1.2\n---\na: 1\n---\n---\n# only a comment\n---\nb: 2\n...\n"
    docs = yamlio.parse(text, "t.yaml")
    assert [d.index for d in docs] == [0, 1, 2, 3]
    assert scalar_at(text, "/b", 3).value == "2"
    assert docs[1].root is not None and docs[1].root.tag.endswith(":null")


def test_anchor_and_alias_mark_the_node_shared() -> None:
    text = "a: &p 80\nb: *p\nc: &lonely 81\nd: &m {x: 1}\ne: *m\n"
    root = yamlio.parse(text, "t.yaml")[0].root
    a, b, c = (yamlio.resolve(root, p) for p in ("/a", "/b", "/c"))
    assert a is not None and a.shared and a.anchor == "p" and not a.alias
    assert b is not None and b.alias and b.shared
    assert c is not None and not c.shared and text[c.start : c.end] == "81"
    inner = yamlio.resolve(root, "/d/x")
    assert inner is not None and inner.shared


@pytest.mark.parametrize("text", ["a: !!str 1.0\n", "a: !<tag:yaml.org,2002:str> 1.0\n", "a: &x !!str\n  1.0\n"])
def test_explicit_tag_is_skipped_and_reported(text: str) -> None:
    node = scalar_at(text, "/a")
    assert node.explicit_tag and node.tag == yamlio.STR_TAG and node.value == "1.0"
    assert text[node.start : node.end] == "1.0"


def test_invalid_yaml_names_file_and_line() -> None:
    with pytest.raises(ManifestError) as info:
        yamlio.parse("a: 1\nb: [1, 2\nc: 3\n", "bad.yaml")
    assert info.value.one_line().startswith("bad.yaml:3:")


@pytest.mark.parametrize(
    ("pointer", "found"),
    [
        ("/m/a~1b", "slash"),
        ("/m/t~0", "tilde"),
        ("/s/1", "two"),
        ("/s/01", None),
        ("/s/9", None),
        ("/x", None),
    ],
)
def test_pointers_follow_rfc_6901(pointer: str, found: str | None) -> None:
    root = yamlio.parse("m: {a/b: slash, t~: tilde}\ns: [one, two]\n", "t.yaml")[0].root
    node = yamlio.resolve(root, pointer)
    assert (node.value if node else None) == found


def test_malformed_pointer_is_rejected() -> None:
    with pytest.raises(ValueError, match="start with"):
        yamlio.split_pointer("a/b")
    with pytest.raises(ValueError, match="escape"):
        yamlio.split_pointer("/a~2")


@pytest.mark.parametrize(
    "value",
    [
        "1.10",
        "010",
        "true",
        "yes",
        "on",
        "1e3",
        "null",
        "~",
        "0x1F",
        "2001-12-14",
        "0X1F",
        "0O17",
        "0B1",
        "-0X_1",
        "0_x1F",
        "1_0.5",
        "2024-1-5",
    ],
)
def test_values_that_load_as_something_else(value: str) -> None:
    assert not yamlio.loads_as_string_plain(value)


@pytest.mark.parametrize(
    "value",
    ["v1.10", "podinfo:0.1.0", "ghcr.io/a/b@sha256:abc", "1.2.3", "0x", "0Xg", "x0X1", "1.2e", "2024-1-5a"],
)
def test_values_that_load_as_strings(value: str) -> None:
    assert yamlio.loads_as_string_plain(value)


def test_duplicate_keys_make_the_file_unreadable() -> None:
    with pytest.raises(ManifestError, match=r"^dup.yaml:3: duplicate key 'image'"):
        yamlio.parse("kind: Pod\nimage: a\nimage: b\n", "dup.yaml")


TRICKY = [
    "\ufeffa: é\r\nb: 'ü'  # c\r\nc: &x {k: 1}\nd: *x\n",
    "%YAML 1.1\n---\na: !!str 1.0\nb: &n\n  v\n---\n---\nlist: [x, {y: 'z'}]\n...\n",
    'a:\n- 1\n- "two"\n- |\n  block\n-  plain\n   folded\n',
    "k: v",
]


@pytest.mark.parametrize("text", TRICKY)
def test_fast_locator_builds_the_same_tree_as_ruamel(text: str) -> None:
    def strip(docs: list[yamlio.Document]) -> list[list[tuple[str, object]]]:
        # libyaml does not report anchor names; everything else must agree.
        return [
            [
                (p, (n.kind, n.start, n.end, n.line, n.column, n.value, n.style, n.shared, n.alias))
                for p, n in yamlio.walk(d.root)
            ]
            for d in docs
        ]

    assert strip(yamlio.parse_fast(text, "t")) == strip(yamlio.parse(text, "t"))


def test_fast_locator_defers_to_ruamel_for_errors() -> None:
    with pytest.raises(ManifestError, match=r"^bad.yaml:2:"):
        yamlio.parse_fast("a: [1\nb: 2\n", "bad.yaml")


def test_a_value_after_a_commented_property_is_located_on_its_own_line() -> None:
    text = "a: &x # note\n  value\nb: &e\nc: 1\n"
    for parser in (yamlio.parse, yamlio.parse_fast):
        root = parser(text, "f.yaml")[0].root
        value = yamlio.resolve(root, "/a")
        assert value is not None and (value.line, value.column, text[value.start : value.end]) == (1, 2, "value")
        empty = yamlio.resolve(root, "/b")
        assert empty is not None and (empty.line, empty.start == empty.end) == (2, True)


def test_tabs_between_tokens_parse_and_tabs_in_values_stay() -> None:
    text = 'a: "x\t# y"\t\nb: |\n  keep\ttab\t\nc:\tz\t# c\n'
    root = yamlio.parse(text, "f.yaml")[0].root
    assert [(p, n.value) for p, n in yamlio.walk(root) if n.kind == "scalar"] == [
        ("/a", "x\t# y"),
        ("/b", "keep\ttab\t\n"),
        ("/c", "z"),
    ]
    with pytest.raises(ManifestError, match=r"f\.yaml:2"):
        yamlio.parse("a:\n\tb: 1\n", "f.yaml")  # a tab that indents is still refused


@pytest.mark.parametrize(("parser", "depth"), [(yamlio.parse, 600), (yamlio.parse_fast, 1200)])
def test_collections_nested_too_deep_are_one_error(parser: Callable[[str, str], object], depth: int) -> None:
    # Each parser's own limit: ruamel.yaml's recursion (about 490 levels), libyaml's 1,000.
    with pytest.raises(ManifestError, match="nested too deeply"):
        parser("image: " + "[" * depth + "]" * depth + "\n", "f.yaml")


READ_AS = "a: x # c\nb: [1, 'two']\nc: {d: 1.10}\n---\ne: y\n"


@pytest.mark.parametrize(
    ("edited", "changed", "same"),
    [
        ("a: z # c\nb: [1, 'two']\nc: {d: 1.10}\n---\ne: y\n", {"/a": ("z", yamlio.STR_TAG)}, True),
        ("a: \"0\" # c\nb: [1, 'two']\nc: {d: 1.10}\n---\ne: y\n", {"/a": ("0", yamlio.STR_TAG)}, True),
        # The value changed as asked, but as another type.
        ("a: 0 # c\nb: [1, 'two']\nc: {d: 1.10}\n---\ne: y\n", {"/a": ("0", yamlio.STR_TAG)}, False),
        # A value that was not to change did.
        ("a: z # c\nb: [1, 'two']\nc: {d: 1.1}\n---\ne: y\n", {"/a": ("z", yamlio.STR_TAG)}, False),
        ("a: x # c\nb: [1, 'two']\nc: {d: 1.10}\n---\ne: y\n", {"/a": ("z", yamlio.STR_TAG)}, False),
        # A plain scalar turned into a string: same text, another tag.
        ("a: x # c\nb: ['1', 'two']\nc: {d: 1.10}\n---\ne: y\n", {}, False),
        ("a: x # c\nb: [1, 'two']\nc: {d: '1.10'}\n---\ne: y\n", {}, False),
        # A quoted string written plain, or as a block, is the same string.
        ("a: x # c\nb: [1, two]\nc: {d: 1.10}\n---\ne: y\n", {}, True),
        ("a: |-\n  x\nb: [1, 'two']\nc: {d: 1.10}\n---\ne: y\n", {}, True),
        # Structure: a key more, an item less, a document less, an anchor (not told from events).
        ("a: z # c\nb: [1, 'two']\nc: {d: 1.10, f: 2}\n---\ne: y\n", {"/a": ("z", yamlio.STR_TAG)}, False),
        ("a: z # c\nb: [1]\nc: {d: 1.10}\n---\ne: y\n", {"/a": ("z", yamlio.STR_TAG)}, False),
        ("a: z # c\nb: [1, 'two']\nc: {d: 1.10}\n", {"/a": ("z", yamlio.STR_TAG)}, False),
        ("a: &q z # c\nb: [1, 'two']\nc: {d: 1.10}\n---\ne: y\n", {"/a": ("z", yamlio.STR_TAG)}, False),
        ("a: !!str z # c\nb: [1, 'two']\nc: {d: 1.10}\n---\ne: y\n", {"/a": ("z", yamlio.STR_TAG)}, False),
        ("a: [z # c\nb: [1, 'two']\nc: {d: 1.10}\n---\ne: y\n", {"/a": ("z", yamlio.STR_TAG)}, False),
    ],
)
def test_an_edited_text_reads_as_the_old_documents_with_only_the_changed_values(
    edited: str, changed: dict[str, tuple[str, str]], same: bool
) -> None:
    docs = yamlio.parse_fast(READ_AS, "t.yaml", core=True)
    spans = {}
    for pointer, wanted in changed.items():
        node = yamlio.resolve(docs[0].root, pointer)
        assert node is not None
        spans[(node.start, node.end)] = wanted
    assert yamlio.reads_as(docs, edited, spans) is same


@pytest.mark.parametrize(
    "text",
    [
        "a: x\nb: [1, {c: y, 'd/~': z}]\ne:\n  - f\n  -\n  - {g: ''}\n",
        "base: &b {image: app:1}\nuse: *b\nlist: [&s v, *s]\n",
        "plain scalar\n",
        "? [k]\n: v\n? {k: 1}\n: w\n",
    ],
)
def test_scalars_ending_at_offsets_are_those_a_walk_finds_there(text: str) -> None:
    for doc in yamlio.parse(text, "t.yaml"):
        by_walk = {
            node.end: (pointer, node)
            for pointer, node in yamlio.walk(doc.root)
            if node.kind == "scalar" and not node.alias
        }
        ends = {*by_walk, len(text) + 5}
        assert yamlio.scalars_ending_at(doc.root, ends) == by_walk
