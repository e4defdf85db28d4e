"""YAML reading with positions: the only module that imports ruamel.yaml (and PyYAML's libyaml binding).

It owns parsing a text (every document of it) into a small, immutable node tree in which each node knows
its exact character span in the original text, its scalar style, anchor, tag and whether it is shared
through an alias; resolving RFC 6901 pointers; telling whether a plain scalar would load as a string; and
telling from libyaml's events alone whether an edited text reads as a tree with only given values changed.
It never serialises a document and does no I/O: callers pass text in and get values out.

Offsets are indices into the Python string as given (a BOM, when present, is character 0 and is kept);
lines and columns are 0-based here and converted to 1-based by callers that show them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, NamedTuple

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import ScalarNode as _RScalar
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.resolver import VersionedResolver

from gitbot.errors import ManifestError

try:
    import yaml as _pyyaml

    _FAST_LOADER: Any = getattr(_pyyaml, "CSafeLoader", None) if _pyyaml.__with_libyaml__ else None
except ImportError:  # pragma: no cover - PyYAML is a dependency; without libyaml only speed is lost
    _FAST_LOADER = None

ScalarStyle = Literal["plain", "single", "double", "literal", "folded"]
NodeKind = Literal["scalar", "mapping", "sequence"]

STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STYLES: dict[str | None, ScalarStyle] = {
    None: "plain",
    "'": "single",
    '"': "double",
    "|": "literal",
    ">": "folded",
}


_CORE_LOADER: Any = None
if _FAST_LOADER is not None:

    class _CoreLoader(_FAST_LOADER):  # type: ignore[misc]
        """libyaml's composer without PyYAML's YAML 1.1 tag resolution, which it would run in Python for every
        node: a tree made for the YAML 1.2 core schema gives each plain scalar its tag itself (`_core_tag`),
        and every other node without a tag of its own is a string, a mapping or a sequence."""

        def resolve(self, kind: type, value: object, implicit: object) -> str:
            return _IMPLICIT_TAGS[kind]

    _IMPLICIT_TAGS = {_pyyaml.ScalarNode: STR_TAG, _pyyaml.MappingNode: _MAP_TAG, _pyyaml.SequenceNode: _SEQ_TAG}
    _CORE_LOADER = _CoreLoader


class Node(NamedTuple):
    """One node of a parsed document.

    `start`/`end` delimit the node's value token in the text (properties such as `&anchor` and `!tag` are
    excluded). `shared` is true when this node, or a collection holding it, is reached more than once through
    anchors and aliases, so that changing it would change several values. `alias` marks an occurrence written
    as `*name`: its span is that of the anchored node. `flow` is true inside a flow collection.

    An immutable tuple: a document has a node per scalar, and a tuple is built several times faster than a
    frozen dataclass, which dominated the time of parsing a large repository.
    """

    kind: NodeKind
    start: int
    end: int
    line: int
    column: int
    tag: str
    anchor: str | None
    explicit_tag: bool
    shared: bool
    alias: bool
    flow: bool
    value: str = ""
    style: ScalarStyle = "plain"
    items: tuple[tuple[Node, Node], ...] = ()
    children: tuple[Node, ...] = ()

    def get(self, key: str) -> Node | None:
        """The value under scalar key `key` of a mapping (None when absent or not a mapping)."""
        if self.kind != "mapping":
            return None
        for k, v in self.items:
            if k.kind == "scalar" and k.value == key:
                return v
        return None

    def scalar(self, key: str) -> str | None:
        """The string value of scalar `key` of a mapping, or None."""
        node = self.get(key)
        if node is None or node.kind != "scalar":
            return None
        return node.value


@dataclass(frozen=True, slots=True)
class Document:
    """One document of a stream; `root` is None only for a stream position with no node."""

    index: int
    root: Node | None


_PER_THREAD = threading.local()


def _loader() -> YAML:
    # A YAML instance keeps its reader, scanner and parser state on itself while it composes, so two threads
    # sharing one (the daemon runs policies side by side) corrupt each other's parse: one per thread.
    loader: YAML | None = getattr(_PER_THREAD, "loader", None)
    if loader is None:
        loader = _PER_THREAD.loader = YAML(typ="safe", pure=True)
    return loader


@lru_cache(maxsize=2)
def _resolver(version: tuple[int, int]) -> VersionedResolver:
    return VersionedResolver(version=version)


def _tag_text(tag: Any) -> str:
    return str(getattr(tag, "value", tag))


class _DuplicateKeyError(Exception):
    def __init__(self, key: str, line: int) -> None:
        super().__init__(key)
        self.key = key
        self.line = line


def _refuse_repeated_keys(items: Sequence[tuple[Node, Node]]) -> None:
    """_DuplicateKeyError at the second of two equal scalar keys of one mapping (merge keys aside): a repeated
    key makes a pointer ambiguous (tools disagree on which one wins), so the file is refused."""
    keys: set[str] = set()
    for k, _ in items:
        if k.kind == "scalar" and k.value != "<<":
            if k.value in keys:
                raise _DuplicateKeyError(k.value, k.line)
            keys.add(k.value)


def parse(text: str, source: str) -> list[Document]:
    """Parse every document of `text`; a text that is not YAML raises ManifestError at `source:line`."""
    try:
        try:
            raw_docs = list(_loader().compose_all(text))
        except MarkedYAMLError as exc:
            # ruamel.yaml refuses a tab that separates tokens (`a: x<TAB># c`, `a:<TAB>x`, a trailing tab),
            # which YAML allows. Such tabs lie outside every scalar, so as spaces they change no value and
            # no offset; anything else is a real error.
            spaced = _space_separating_tabs(text) if "\t" in text and "'\\t'" in str(exc.problem) else None
            if spaced is None:
                raise
            raw_docs = list(_loader().compose_all(spaced))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ManifestError(f"not valid YAML: {problem}", where=f"{source}{line}") from exc
    except ReaderError as exc:
        raise _forbidden_character(exc, text, source) from None
    except YAMLError as exc:
        raise ManifestError(f"not valid YAML: {' '.join(str(exc).split())}", where=source) from exc
    except RecursionError:
        raise _too_deep(source, text) from None
    try:
        return _documents(raw_docs, text, source, offset=0)
    except RecursionError:
        raise _too_deep(source, text) from None


def _forbidden_character(exc: ReaderError, text: str, source: str) -> ManifestError:
    """A character YAML does not allow (NUL, most C0/C1 controls, a lone surrogate) at its line."""
    position = exc.position if isinstance(exc.position, int) and 0 <= exc.position < len(text) else None
    code = ord(text[position]) if position is not None else exc.character
    kind = "control character" if isinstance(code, int) and (code < 0x20 or 0x7F <= code <= 0x9F) else "character"
    shown = f"U+{code:04X}" if isinstance(code, int) else repr(code)
    where = f"{source}:{_line_at(text, position)}" if position is not None else source
    return ManifestError(f"not valid YAML: {kind} {shown} is not allowed", where=where)


def _line_at(text: str, index: int) -> int:
    # 1-based, lines split after LF only, as editors and git count them.
    return text.count("\n", 0, index) + 1


def _too_deep(source: str, text: str, line: int | None = None) -> ManifestError:
    # Both parsers and the tree conversion recurse once per level; a hostile file may nest thousands deep.
    if line is None:
        line = _deepest_line(text)
    where = f"{source}:{line}" if line is not None else source
    return ManifestError("not accepted: collections nested too deeply", where=where)


def _deepest_line(text: str) -> int | None:
    """The 1-based line where `text` nests deepest, or where libyaml stops at its nesting limit.

    Read from libyaml's event stream, which does not recurse (ruamel.yaml's takes seconds on such a text).
    """
    if _FAST_LOADER is None:
        return None
    depth = deepest = 0
    line: int | None = None
    try:
        for event in _pyyaml.parse(text, Loader=_FAST_LOADER):
            if isinstance(event, _pyyaml.CollectionStartEvent):
                depth += 1
                if depth > deepest:
                    deepest, line = depth, event.start_mark.line + 1
            elif isinstance(event, _pyyaml.CollectionEndEvent):
                depth -= 1
    except _pyyaml.MarkedYAMLError as exc:
        if "nesting depth" in str(exc) and exc.problem_mark is not None:
            return int(exc.problem_mark.line) + 1
    except (_pyyaml.YAMLError, UnicodeEncodeError):
        pass
    return line


def _space_separating_tabs(text: str) -> str | None:
    """`text` with every tab outside the scalars (as libyaml locates them) made a space; None when unsure."""
    if _FAST_LOADER is None or "\ufeff" in text[1:]:
        return None
    try:
        raw_docs = list(_pyyaml.compose_all(text, Loader=_FAST_LOADER))
    except (_pyyaml.YAMLError, RecursionError):
        return None
    offset = 1 if text.startswith("\ufeff") else 0
    inside = bytearray(len(text))
    pending = [raw for raw in raw_docs if raw is not None]
    while pending:
        node = pending.pop()
        if node.id == "scalar":
            # The value token only: a tab between an `&anchor` or `!tag` and the value separates them.
            start = min(_value_start(text, node.start_mark.index + offset)[0], node.end_mark.index + offset)
            end = node.end_mark.index + offset
            inside[start:end] = b"\x01" * (end - start)
        elif node.id == "mapping":
            pending.extend(part for pair in node.value for part in pair)
        else:
            pending.extend(node.value)
    chars = list(text)
    for index, char in enumerate(chars):
        if char == "\t" and not inside[index]:
            chars[index] = " "
    return "".join(chars)


def _documents(
    raw_docs: list[Any], text: str, source: str, *, offset: int, core: bool = False, lean: bool = False
) -> list[Document]:
    """Our trees of the composed `raw_docs`; `lean` (libyaml's nodes of a text without anchors, hence without
    aliases or shared nodes) takes the quicker conversion that needs no reference counts."""
    docs: list[Document] = []
    for index, raw in enumerate(raw_docs):
        counts: dict[int, int] = {}
        seen: set[int] = set()
        root = None
        if raw is not None:
            try:
                if lean:
                    root = _lean(raw, text, False, offset, core)
                else:
                    _count(raw, counts)
                    root = _convert(raw, text, counts, seen, shared=False, flow=False, offset=offset, core=core)
            except _DuplicateKeyError as exc:
                raise ManifestError(f"duplicate key {exc.key!r}", where=f"{source}:{exc.line + 1}") from None
        docs.append(Document(index=index, root=root))
    return docs


def parse_fast(text: str, source: str, *, core: bool = False) -> list[Document]:
    """The same tree as `parse`, located by libyaml when it is available (many times faster).

    Whenever libyaml is missing, refuses the text or might place it differently (a BOM anywhere but at the
    start), `parse` decides. Differences: anchor names are not reported, and implicit tags follow YAML 1.1
    (`yes` is a bool) unless `core`, which resolves plain scalars as `parse` does (YAML 1.2 core schema);
    a text with a `%YAML` directive (which `parse` follows) is then left to `parse` altogether.
    """
    if _FAST_LOADER is None or "\ufeff" in text[1:] or (core and _DIRECTIVE.search(text)):
        return parse(text, source)
    try:
        raw_docs = list(_pyyaml.compose_all(text, Loader=_CORE_LOADER if core else _FAST_LOADER))
    except RecursionError:
        raise _too_deep(source, text) from None
    except _pyyaml.YAMLError as exc:
        if "nesting depth" in str(exc):
            # libyaml stops at 1,000 levels; ruamel.yaml would take seconds to reach its own limit.
            mark = getattr(exc, "problem_mark", None)
            raise _too_deep(source, text, int(mark.line) + 1 if mark is not None else None) from None
        return parse(text, source)
    except UnicodeEncodeError:
        return parse(text, source)  # a lone surrogate, which libyaml cannot even be handed: `parse` says where
    try:
        # libyaml does not count a leading BOM; ruamel.yaml (and the text) do.
        offset = 1 if text.startswith("\ufeff") else 0
        return _documents(raw_docs, text, source, offset=offset, core=core, lean="&" not in text)
    except RecursionError:
        raise _too_deep(source, text) from None


def _count(node: Any, counts: dict[int, int]) -> None:
    key = id(node)
    counts[key] = counts.get(key, 0) + 1
    if counts[key] > 1:
        return
    if node.id == "mapping":
        for k, v in node.value:
            _count(k, counts)
            _count(v, counts)
    elif node.id == "sequence":
        for child in node.value:
            _count(child, counts)


_PROPERTY = re.compile(r"&[^\s,\[\]{}]+|!<[^>]*>|![^\s,\[\]{}]*")


def _skip_gap(text: str, pos: int) -> int:
    """Skip the blanks, comments and line breaks a property may stand apart from its value by."""
    while pos < len(text):
        char = text[pos]
        if char in " \t\r\n":
            pos += 1
        elif char == "#" and text[pos - 1] in " \t\r\n":
            end = text.find("\n", pos)
            pos = len(text) if end < 0 else end
        else:
            break
    return pos


def _value_start(text: str, start: int) -> tuple[int, bool]:
    """Skip `&anchor` and `!tag` properties at `start`: the value offset and whether a tag was seen."""
    explicit = False
    pos = start
    while pos < len(text) and text[pos] in "&!":
        match = _PROPERTY.match(text, pos)
        if match is None or match.end() == pos:
            break
        explicit = explicit or text[pos] == "!"
        pos = _skip_gap(text, match.end())
    return pos, explicit


_DIRECTIVE = re.compile(r"^%", re.MULTILINE)


def _convert(
    raw: Any,
    text: str,
    counts: dict[int, int],
    seen: set[int],
    *,
    shared: bool,
    flow: bool,
    offset: int,
    core: bool = False,
) -> Node:
    key = id(raw)
    is_alias = key in seen
    seen.add(key)
    shared = shared or counts.get(key, 0) > 1
    mark = raw.start_mark.index + offset
    start, explicit = _value_start(text, mark)
    # An empty value after its properties ends where they do: do not move it into the next line's text.
    start = min(start, max(raw.end_mark.index + offset, mark))
    line, column = raw.start_mark.line, raw.start_mark.column + (start - mark)
    if start != mark:
        # A property on its own line moves the value; count lines in the skipped text.
        skipped = text[mark:start]
        newlines = skipped.count("\n")
        if newlines:
            line += newlines
            column = len(skipped) - skipped.rfind("\n") - 1
    anchor = getattr(raw, "anchor", None)
    anchor = anchor if isinstance(anchor, str) else getattr(anchor, "value", None)
    common: dict[str, Any] = {
        "start": start,
        "end": raw.end_mark.index + offset,
        "line": line,
        "column": column,
        "tag": _core_tag(raw.value) if core and _is_plain(raw) and not explicit else _tag_text(raw.tag),
        "anchor": anchor,
        "explicit_tag": explicit,
        "shared": shared,
        "alias": is_alias,
    }
    # Both parsers' node classes carry `id` ("scalar", "mapping", "sequence").
    if raw.id == "scalar":
        return Node(kind="scalar", flow=flow, value=raw.value, style=_STYLES.get(raw.style, "plain"), **common)
    inner_flow = flow or bool(getattr(raw, "flow_style", False))
    if is_alias:
        # Do not descend twice into the same anchored collection: its children are reported once.
        return Node(kind="mapping" if raw.id == "mapping" else "sequence", flow=flow, **common)
    if raw.id == "mapping":
        items = tuple(
            (
                _convert(k, text, counts, seen, shared=shared, flow=inner_flow, offset=offset, core=core),
                _convert(v, text, counts, seen, shared=shared, flow=inner_flow, offset=offset, core=core),
            )
            for k, v in raw.value
        )
        _refuse_repeated_keys(items)
        return Node(kind="mapping", flow=inner_flow, items=items, **common)
    children = tuple(
        _convert(c, text, counts, seen, shared=shared, flow=inner_flow, offset=offset, core=core) for c in raw.value
    )
    return Node(kind="sequence", flow=inner_flow, children=children, **common)


_new_node = tuple.__new__


def _lean(raw: Any, text: str, flow: bool, offset: int, core: bool) -> Node:
    """`_convert` of a libyaml node of a text without anchors: nothing is shared or an alias, and a value
    token starts where libyaml marks it unless a `!tag` stands before it."""
    start_mark = raw.start_mark
    start = start_mark.index + offset
    end = raw.end_mark.index + offset
    line, column = start_mark.line, start_mark.column
    explicit = False
    if start < end and text[start] == "!":
        mark = start
        start, explicit = _value_start(text, mark)
        start = min(start, max(end, mark))
        column += start - mark
        skipped = text[mark:start]
        newlines = skipped.count("\n")
        if newlines:
            line += newlines
            column = len(skipped) - skipped.rfind("\n") - 1
    kind = raw.id
    if kind == "scalar":
        style = raw.style
        value = raw.value
        tag = _core_tag(value) if core and not style and not explicit else raw.tag
        return _new_node(
            Node,
            (
                "scalar",
                start,
                end,
                line,
                column,
                tag,
                None,
                explicit,
                False,
                False,
                flow,
                value,
                _STYLES.get(style, "plain"),
                (),
                (),
            ),
        )
    inner = flow or bool(raw.flow_style)
    if kind == "mapping":
        items = tuple((_lean(k, text, inner, offset, core), _lean(v, text, inner, offset, core)) for k, v in raw.value)
        _refuse_repeated_keys(items)
        return _new_node(
            Node,
            ("mapping", start, end, line, column, raw.tag, None, explicit, False, False, inner, "", "plain", items, ()),
        )
    children = tuple(_lean(c, text, inner, offset, core) for c in raw.value)
    return _new_node(
        Node,
        ("sequence", start, end, line, column, raw.tag, None, explicit, False, False, inner, "", "plain", (), children),
    )


_END = object()


def reads_as(docs: list[Document], text: str, changed: Mapping[tuple[int, int], tuple[str, str]]) -> bool:
    """Whether `text` reads (by libyaml's events, no tree built) as `docs` with the scalars spanning
    `changed`'s (start, end) in `docs` holding its (value, tag) instead; `docs` from `parse_fast(core=True)`.

    True only when sure: anchors, tags, directives or libyaml's refusal make it False, and the caller then
    compares whole trees. A node matches an event of its kind, a scalar by value and (YAML 1.2 core) tag, and
    a collection by its items in order, so True means the same keys, values and tags everywhere else.
    """
    if _FAST_LOADER is None or "&" in text or "\ufeff" in text[1:] or _DIRECTIVE.search(text):
        return False
    loader = _FAST_LOADER(text)
    try:
        return _reads_as(docs, loader.get_event, changed)
    except (_pyyaml.YAMLError, UnicodeEncodeError, RecursionError):
        return False
    finally:
        loader.dispose()


def _reads_as(docs: list[Document], get: Any, changed: Mapping[tuple[int, int], tuple[str, str]]) -> bool:
    events = _pyyaml.events
    scalar_event = events.ScalarEvent
    mapping_start, sequence_start = events.MappingStartEvent, events.SequenceStartEvent
    mapping_end, sequence_end = events.MappingEndEvent, events.SequenceEndEvent
    # By start alone (no tuple made per scalar); the end is checked where one is found.
    wanted = {start: (end, want) for (start, end), want in changed.items() if end > start}
    if type(get()) is not events.StreamStartEvent:
        return False
    for doc in docs:
        if doc.root is None or type(get()) is not events.DocumentStartEvent:
            return False
        todo: list[Any] = [doc.root]
        pop, push = todo.pop, todo.append
        while todo:
            node = pop()
            event = get()
            kind = type(event)
            if node is _END:
                if kind is not mapping_end and kind is not sequence_end:
                    return False
                continue
            if kind is not scalar_event and kind is not mapping_start and kind is not sequence_start:
                return False  # an alias, or a collection ending early
            # One unpacking instead of an attribute lookup per field.
            node_kind, start, end, _, _, tag, _, explicit, shared, alias, _, value, style, items, children = node
            if alias or explicit or shared or event.tag is not None:
                return False
            if kind is scalar_event:
                if node_kind != "scalar":
                    return False
                read = event.value
                change = wanted.get(start)
                if change is not None and change[0] == end:
                    if (read, STR_TAG if event.style else _core_tag(read)) != change[1]:
                        return False
                elif read != value:
                    return False
                elif (not event.style) != (style == "plain") and (STR_TAG if event.style else _core_tag(read)) != tag:
                    # Same value, plain on one side only: the tags may differ (`1` is an int, `"1"` a string);
                    # with the same style on both sides, the same value has the same tag.
                    return False
            elif kind is mapping_start:
                if node_kind != "mapping" or tag != _MAP_TAG:
                    return False
                push(_END)
                for key, value_node in reversed(items):
                    push(value_node)
                    push(key)
            elif kind is sequence_start:
                if node_kind != "sequence" or tag != _SEQ_TAG:
                    return False
                push(_END)
                todo.extend(reversed(children))
        if type(get()) is not events.DocumentEndEvent:
            return False
    return type(get()) is events.StreamEndEvent


def escape_token(token: str) -> str:
    """One RFC 6901 reference token."""
    return token.replace("~", "~0").replace("/", "~1")


def split_pointer(pointer: str) -> list[str]:
    """The reference tokens of an RFC 6901 pointer; raises ValueError when it is malformed."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"pointer {pointer!r} must start with '/'")
    tokens = pointer[1:].split("/")
    for token in tokens:
        if re.search(r"~(?![01])", token):
            raise ValueError(f"pointer {pointer!r} has an invalid '~' escape")
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


def resolve(root: Node | None, pointer: str) -> Node | None:
    """The node at `pointer` below `root`, or None when the path does not exist."""
    node = root
    for token in split_pointer(pointer):
        if node is None:
            return None
        if node.kind == "mapping":
            node = node.get(token)
        elif node.kind == "sequence":
            if not re.fullmatch(r"0|[1-9][0-9]*", token) or int(token) >= len(node.children):
                return None
            node = node.children[int(token)]
        else:
            return None
    return node


def walk(root: Node | None, pointer: str = "") -> Iterator[tuple[str, Node]]:
    """Every (pointer, node) pair below `root` in document order; alias occurrences are not descended."""
    if root is None:
        return
    yield pointer, root
    if root.kind == "mapping":
        for k, v in root.items:
            yield from walk(v, f"{pointer}/{escape_token(k.value if k.kind == 'scalar' else k.tag)}")
    elif root.kind == "sequence":
        for i, child in enumerate(root.children):
            yield from walk(child, f"{pointer}/{i}")


def scalars_ending_at(root: Node | None, ends: set[int]) -> dict[int, tuple[str, Node]]:
    """The value scalars (not aliases) below `root` whose token ends at one of `ends`: end -> (pointer, node).

    Where several end at one offset, the last in `walk` order is given, as a mapping of `walk` by end would;
    only the pointers of those found are made.
    """
    found: dict[int, tuple[Node, Any]] = {}
    if root is None:
        return {}
    stack: list[tuple[Node, Any]] = [(root, None)]
    while stack:
        node, path = stack.pop()
        kind = node.kind
        if kind == "scalar":
            if node.end in ends and not node.alias:
                found[node.end] = (node, path)
        elif kind == "mapping":
            for key, value in reversed(node.items):
                stack.append((value, (path, key.value if key.kind == "scalar" else key.tag)))
        else:
            children = node.children
            for index in range(len(children) - 1, -1, -1):
                stack.append((children[index], (path, str(index))))
    return {end: (_pointer(path), node) for end, (node, path) in found.items()}


def _pointer(path: Any) -> str:
    tokens: list[str] = []
    while path is not None:
        path, token = path
        tokens.append(escape_token(token))
    return "".join(f"/{token}" for token in reversed(tokens))


def _core_tag(value: str) -> str:
    """The tag `parse` gives a plain scalar without a tag of its own (YAML 1.2 core schema)."""
    # Keys and short values repeat from file to file; a long value is not kept alive by the cache.
    return _short_core_tag(value) if len(value) <= 64 else _resolved_core_tag(value)


def _resolved_core_tag(value: str) -> str:
    return _tag_text(_resolver((1, 2)).resolve(_RScalar, value, (True, False)))


_short_core_tag = lru_cache(maxsize=8192)(_resolved_core_tag)


def _is_plain(raw: Any) -> bool:
    # libyaml reports a plain scalar's style as "", ruamel.yaml as None.
    return bool(raw.id == "scalar" and not raw.style)


# What Kubernetes' Go YAML readers take as a number after dropping every `_` (strconv's base-0 integers,
# upper-case prefixes included, and their float pattern), or as a date with one-digit month or day.
def plain_resolves_to(value: str, tag: str) -> bool:
    """Whether `value` written plain resolves to `tag` under YAML 1.2 rules (as the parser reads it)."""
    return _tag_text(_resolver((1, 2)).resolve(_RScalar, value, (True, False))) == tag


_GO_NUMBER = re.compile(
    r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*"
    r"|(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?)"
)
_GO_DATE = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}")


@lru_cache(maxsize=4096)
def loads_as_string_plain(value: str) -> bool:
    """Whether `value` written plain loads as the same string under both YAML 1.1 and 1.2 rules.

    Kubernetes tooling still reads YAML 1.1 (`yes`, `on`, `010`), so a value must be a string under both.
    Its Go YAML readers also take `0X1F`, `0O17`, `0B1`, `0_x1F` and `2024-1-5` as other types.
    Remembered: a cycle writes the same new image reference into many files.
    """
    if value[:1] in "0123456789+-" and (_GO_NUMBER.fullmatch(value.replace("_", "")) or _GO_DATE.fullmatch(value)):
        return False
    for version in ((1, 1), (1, 2)):
        if _tag_text(_resolver(version).resolve(_RScalar, value, (True, False))) != STR_TAG:
            return False
    return True


def load_with_positions(text: str, *, source: str) -> tuple[Any, dict[str, int]]:
    """Load one YAML document as plain Python data and map every JSON Pointer in it to its 1-based line.

    Used for configuration files, where an error must name the line of the field it is about.
    """
    yaml = YAML(typ="rt")
    try:
        data = yaml.load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError(f"not valid YAML: {problem}", where=f"{source}{line}") from exc
    lines: dict[str, int] = {"": 1}

    def walk(node: Any, pointer: str) -> Any:
        if isinstance(node, dict):
            out: dict[Any, Any] = {}
            for key, value in node.items():
                child = f"{pointer}/{escape_token(str(key))}"
                line_col = node.lc.key(key) if hasattr(node, "lc") else None
                if line_col is not None:
                    lines[child] = int(line_col[0]) + 1
                out[str(key)] = walk(value, child)
            return out
        if isinstance(node, list):
            items = []
            for index, value in enumerate(node):
                child = f"{pointer}/{index}"
                if hasattr(node, "lc"):
                    lines[child] = int(node.lc.item(index)[0]) + 1
                items.append(walk(value, child))
            return items
        if isinstance(node, str):
            return str(node)
        return node

    return walk(data, ""), lines
