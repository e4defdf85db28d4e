"""Text surgery on YAML: splice new scalar values into the original text and prove nothing else changed.

This module owns `apply_assignments` and `apply_steps` (several edits of one file in turn): it locates each
addressed scalar through `gitbot.yamlio`, writes the new value in the token's own quoting style (adding
quotes only when the plain text would load as something else), keeps every other character as it was,
re-parses the result and refuses unless exactly the assigned values changed. It also keeps canary routes
whole: weights that summed to 100 must still sum to 100.
It must not do I/O, never dumps a document, and never finds a value by searching for its old text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gitbot import routes, workers, yamlio
from gitbot.domain import Assignment
from gitbot.errors import EditError, GitbotError, ManifestError

_FIRST_FORBIDDEN = set(",[]{}#&*!|>'\"%@`")
_FLOW_FORBIDDEN = set(",[]{}")
_CORE_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("int", "float", "bool", "null"))
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_TAG = "tag:yaml.org,2002:int"


@dataclass(frozen=True)
class _Splice:
    assignment: Assignment
    node: yamlio.Node
    token: str
    tag: str


def _where(source: str, assignment: Assignment) -> str:
    return f"{source} {assignment.document}:{assignment.pointer}"


def plain_is_safe(value: str, *, flow: bool = False) -> bool:
    """Whether `value` can be written as a plain scalar token without changing how it parses."""
    if not value or value != value.strip() or not value.isprintable() or "\ufeff" in value:
        return False
    first = value[0]
    if first in _FIRST_FORBIDDEN:
        return False
    if first in "-?:" and (len(value) == 1 or value[1] == " " or (flow and value[1] in _FLOW_FORBIDDEN)):
        return False
    if flow and first in "?:":
        # In a flow collection a `?` or `:` opens a key or a value, whatever follows it.
        return False
    if value.startswith(("---", "...")):
        return False
    if ": " in value or " #" in value or value.endswith(":"):
        return False
    return not (flow and any(c in _FLOW_FORBIDDEN for c in value))


def double_quoted(value: str) -> str:
    """`value` as a double-quoted YAML scalar, escaping what a double-quoted scalar cannot hold raw."""
    out = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif not char.isprintable() or char == "\ufeff":
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _canonical(value: str) -> str | None:
    """The tag of a plain value that reads the same under every YAML version (`42`, `true`), else None.

    Only these keep a non-string scalar plain: `010` or `1.10` would load as a different number.
    """
    if re.fullmatch(r"-?(0|[1-9][0-9]*)", value):
        return "tag:yaml.org,2002:int"
    if value in ("true", "false"):
        return "tag:yaml.org,2002:bool"
    return None


def render_token(value: str, node: yamlio.Node) -> tuple[str, str]:
    """The token that writes `value` in place of scalar `node`, and the tag it will load with."""
    if node.style == "single" and value.isprintable() and "\ufeff" not in value:
        return "'" + value.replace("'", "''") + "'", yamlio.STR_TAG if not node.explicit_tag else node.tag
    if node.style in ("single", "double"):
        return double_quoted(value), yamlio.STR_TAG if not node.explicit_tag else node.tag
    # Plain: keep it plain when the text stays a plain token and loads with the same type as before.
    if plain_is_safe(value, flow=node.flow):
        if node.explicit_tag:
            return value, node.tag
        if node.tag != yamlio.STR_TAG and _canonical(value) == node.tag:
            return value, node.tag
        if yamlio.loads_as_string_plain(value):
            return value, yamlio.STR_TAG
    return double_quoted(value), yamlio.STR_TAG if not node.explicit_tag else node.tag


def _token_still_holds(raw: str, node: yamlio.Node, *, fast: bool) -> bool:
    """Whether the text at the node's span still reads as the node's value (guards the position mapping)."""
    if not raw:
        return False
    if node.style == "plain" and "\n" not in raw:
        return raw == node.value
    if "\n" not in raw and "\r" not in raw and len(raw) >= 2:
        # One line, nothing escaped: the value is read off directly, without parsing the token.
        if node.style == "single" and raw[0] == raw[-1] == "'":
            return raw[1:-1].replace("''", "'") == node.value
        if node.style == "double" and raw[0] == raw[-1] == '"' and "\\" not in raw:
            return raw[1:-1] == node.value
    if node.style == "single" and (raw[0], raw[-1]) != ("'", "'"):
        return False
    if node.style == "double" and (raw[0], raw[-1]) != ('"', '"'):
        return False
    try:
        docs = _parse(raw, "<token>", fast=fast)
    except ManifestError:
        return False
    return len(docs) == 1 and docs[0].root is not None and docs[0].root.value == node.value


def _locate(docs: list[yamlio.Document], text: str, assignment: Assignment, source: str, *, fast: bool) -> yamlio.Node:
    where = _where(source, assignment)
    if not 0 <= assignment.document < len(docs):
        raise EditError(f"no document {assignment.document} (the file has {len(docs)})", where=where)
    try:
        node = yamlio.resolve(docs[assignment.document].root, assignment.pointer)
    except ValueError as exc:
        raise EditError(str(exc), where=where) from exc
    if node is None:
        raise EditError("no value at this pointer", where=where)
    line = f" (line {node.line + 1})"
    if node.kind != "scalar":
        raise EditError(f"pointer names a {node.kind}, not a scalar{line}", where=where)
    if node.alias:
        raise EditError(f"value is an alias of &{node.anchor}; edit the anchored value instead{line}", where=where)
    if node.shared:
        raise EditError(f"value is shared through an anchor and its aliases{line}", where=where)
    if node.style in ("literal", "folded"):
        raise EditError(f"block scalars are not edited{line}", where=where)
    if node.end <= node.start:
        raise EditError(f"value is empty (an implicit null); nothing to replace{line}", where=where)
    if not _token_still_holds(text[node.start : node.end], node, fast=fast):
        raise EditError(f"text at the value's position does not read as its value{line}", where=where)
    return node


def _route_key(doc: yamlio.Document, pointer: str) -> str | None:
    """The route list pointer when `pointer` is a weight in a document of one of `gitbot.routes`' kinds."""
    root = doc.root
    if root is None or root.kind != "mapping":
        return None
    route_kind = routes.owner(root.scalar("kind") or "", root.scalar("apiVersion") or "")
    return route_kind.route_list(pointer) if route_kind is not None else None


def _weight_gap(docs: list[yamlio.Document], text: str, a: Assignment, source: str) -> _Splice | None:
    """The splice that writes a route entry's missing `weight` (Gateway API's default is 1), or None when
    `a` does not assign one.

    A block mapping gets a `weight: N` line after the last of its one-line `key: value` pairs, at its keys'
    indentation and with the file's line break; a flow mapping gets `, weight: N` after its last value.
    """
    if (
        not 0 <= a.document < len(docs)
        or not a.pointer.endswith("/weight")
        or _route_key(docs[a.document], a.pointer) is None
    ):
        return None
    entry = yamlio.resolve(docs[a.document].root, a.pointer.removesuffix("/weight"))
    if entry is None or entry.kind != "mapping" or entry.get("weight") is not None or not entry.items:
        return None
    if not re.fullmatch(r"0|[1-9][0-9]{0,8}", a.value):
        raise EditError(f"weight {a.value!r} is not a non-negative integer", where=_where(source, a))
    first_key = entry.items[0][0]
    if text[entry.start] == "{":
        last = entry.items[-1][1]
        at, token = last.end, f", weight: {a.value}"
    else:
        one_line = [
            value
            for key, value in entry.items
            if value.kind == "scalar"
            and value.style in ("plain", "single", "double")
            and "\n" not in text[key.start : value.end]
        ]
        if not one_line:
            raise EditError(
                "cannot add a weight: the entry has no one-line key: value to put it after", where=_where(source, a)
            )
        newline = text.find("\n", one_line[-1].end)
        at = len(text) if newline < 0 else newline - (text[newline - 1] == "\r")
        line_break = "\r\n" if "\r\n" in text else "\n"
        token = f"{line_break}{' ' * first_key.column}weight: {a.value}"
    node = yamlio.Node(
        kind="scalar",
        start=at,
        end=at,
        line=first_key.line,
        column=first_key.column,
        tag=_INT_TAG,
        anchor=None,
        explicit_tag=False,
        shared=False,
        alias=False,
        flow=entry.flow,
        value="",
    )
    return _Splice(assignment=a, node=node, token=token, tag=_INT_TAG)


def _check_weights(docs: list[yamlio.Document], assignments: Sequence[Assignment], source: str) -> None:
    groups: dict[tuple[int, str], list[Assignment]] = {}
    for a in assignments:
        key = _route_key(docs[a.document], a.pointer)
        if key is None:
            continue
        if not re.fullmatch(r"0|[1-9][0-9]{0,8}", a.value):
            raise EditError(f"weight {a.value!r} is not a non-negative integer", where=_where(source, a))
        groups.setdefault((a.document, key), []).append(a)
    for (document, route_pointer), changed in groups.items():
        route = yamlio.resolve(docs[document].root, route_pointer)
        if route is None or route.kind != "sequence":
            continue
        new_values = {a.pointer: a.value for a in changed}
        before = after = 0
        for index, entry in enumerate(route.children):
            weight = entry.get("weight")
            # ASCII digits only: `str.isdigit` also takes `²` (which int() refuses) and other scripts' digits.
            if weight is None or weight.kind != "scalar" or not re.fullmatch(r"[0-9]+", weight.value):
                continue
            before += int(weight.value)
            after += int(new_values.get(f"{route_pointer}/{index}/weight", weight.value))
        if before == 100 and after != 100:
            raise EditError(
                f"weights of route {route_pointer} would sum to {after}, not 100",
                where=_where(source, changed[0]),
            )


def _flatten(docs: list[yamlio.Document]) -> dict[tuple[int, str], tuple[str, str, str, bool]]:
    flat: dict[tuple[int, str], tuple[str, str, str, bool]] = {}
    for doc in docs:
        for pointer, node in yamlio.walk(doc.root):
            flat[(doc.index, pointer)] = (node.kind, node.tag, node.value, node.alias)
    return flat


def apply_assignments(text: str, assignments: Sequence[Assignment], *, source: str) -> str:
    """`text` with each assignment's scalar replaced; raises EditError (file untouched) when it cannot.

    All assignments form one edit: either all apply and the re-parsed result differs from `text` in exactly
    those values, or none does. `source` names the file in error messages.
    """
    if not assignments:
        return text
    return apply_steps(text, [assignments], source=source)[-1]


def apply_steps(text: str, steps: Sequence[Sequence[Assignment]], *, source: str, chain: bool = True) -> list[str]:
    """The text after each step of assignments: one edit of the file, located and confirmed together.

    With `chain`, the text of step k holds the steps up to k (commits made in turn on one branch); without,
    step k alone, each from `text` (one pull request each). The text is parsed once to locate every value
    and the text holding every step once to confirm them all; each step's text is the same splices, of
    tokens that text confirmed at the same places, between the same original characters. An assignment
    of the same value twice is one assignment; two different values for one field are an EditError.

    libyaml parses when it can (`yamlio.parse_fast` with the core schema, as ruamel.yaml resolves); when
    that reading refuses the edit, ruamel.yaml decides, so a refusal says what it always said.
    """
    if not any(steps):
        return [text for _ in steps]
    try:
        return _apply(text, steps, source, chain, fast=True)
    except EditError:
        return _apply(text, steps, source, chain, fast=False)


# One file's edit: its text, the assignments of each step, its name, and whether steps chain.
EditJob = tuple[str, Sequence[Sequence[Assignment]], str, bool]


def _apply_job(job: EditJob) -> list[str | None]:
    text, steps, source, chain = job
    results = apply_steps(text, steps, source=source, chain=chain)
    # Only the texts of the steps that change this file are wanted: the others are not kept (nor sent back).
    return [result if assignments else None for result, assignments in zip(results, steps, strict=True)]


def apply_many(jobs: Sequence[EditJob]) -> list[list[str | None]]:
    """`apply_steps` of each file's job, in order, with None for each step that assigns nothing in the file:
    in worker processes when there are thousands of files (`gitbot.workers`). The error of the first job in
    order that fails is raised, as a loop would raise it."""
    if len(jobs) < workers.MIN_ITEMS:
        return [_apply_job(job) for job in jobs]
    out: list[list[str | None]] = []
    for result in workers.map_ordered(_apply_job, jobs):
        if isinstance(result, GitbotError):
            raise result
        out.append(result)
    return out


def _parse(text: str, source: str, *, fast: bool) -> list[yamlio.Document]:
    return yamlio.parse_fast(text, source, core=True) if fast else yamlio.parse(text, source)


def _apply(text: str, steps: Sequence[Sequence[Assignment]], source: str, chain: bool, *, fast: bool) -> list[str]:
    try:
        docs = _parse(text, source, fast=fast)
    except ManifestError as exc:
        raise EditError(f"cannot edit a file that does not parse: {exc.message}", where=exc.where) from exc
    wanted: dict[tuple[int, str], Assignment] = {}
    step_of: dict[tuple[int, str], int] = {}
    for step, assignments in enumerate(steps):
        for a in assignments:
            surrogate = _SURROGATE.search(a.value)
            if surrogate is not None:
                # Bytes that are not UTF-8 reach a command line as lone surrogates; YAML cannot hold one, even escaped.
                raise EditError(
                    f"value holds U+{ord(surrogate.group()):04X}, which is not a character (bytes that are not UTF-8?)",
                    where=_where(source, a),
                )
            previous = wanted.get((a.document, a.pointer))
            if previous is not None and previous.value != a.value:
                raise EditError(f"assigned twice: {previous.value!r} and {a.value!r}", where=_where(source, a))
            wanted[(a.document, a.pointer)] = a
            step_of.setdefault((a.document, a.pointer), step)
    gaps = {key: gap for key, a in wanted.items() if (gap := _weight_gap(docs, text, a, source)) is not None}
    located = [(a, _locate(docs, text, a, source, fast=fast)) for key, a in wanted.items() if key not in gaps]
    routed = any(_route_key(docs[a.document], a.pointer) is not None for a in wanted.values())
    for step in range(len(steps) if routed else 0):
        # Every text handed out keeps canary routes whole, not only the last one.
        _check_weights(docs, [a for key, a in wanted.items() if _in_step(step_of[key], step, chain)], source)
    splices: list[_Splice] = []
    for a, node in located:
        if node.value == a.value:
            continue
        if node.explicit_tag and node.tag in _CORE_TAGS and not yamlio.plain_resolves_to(a.value, node.tag):
            # `!!int abc` parses, but no loader can construct it.
            short = node.tag.rsplit(":", 1)[-1]
            raise EditError(f"value {a.value!r} does not fit its tag !!{short}", where=_where(source, a))
        token, tag = render_token(a.value, node)
        splices.append(_Splice(assignment=a, node=node, token=token, tag=tag))
    splices.extend(gaps.values())
    if not splices:
        return [text for _ in steps]
    splices.sort(key=lambda s: s.node.start)
    _confirm(docs, _splice(text, splices), splices, source, fast=fast, added=set(gaps))
    out = []
    for step in range(len(steps)):
        chosen = [s for s in splices if _in_step(step_of[(s.assignment.document, s.assignment.pointer)], step, chain)]
        out.append(_splice(text, chosen))
    return out


def _in_step(first: int, step: int, chain: bool) -> bool:
    """Whether an assignment first made in step `first` is in the text of step `step`."""
    return first <= step if chain else first == step


def _splice(text: str, splices: Sequence[_Splice]) -> str:
    """`text` with each splice's token in place of its node's span (splices in text order)."""
    pieces: list[str] = []
    cursor = 0
    for splice in splices:
        pieces.append(text[cursor : splice.node.start])
        pieces.append(splice.token)
        cursor = splice.node.end
    pieces.append(text[cursor:])
    return "".join(pieces)


def _confirm(
    old_docs: list[yamlio.Document],
    result: str,
    splices: list[_Splice],
    source: str,
    *,
    fast: bool,
    added: set[tuple[int, str]] | None = None,
) -> None:
    """Refuse unless `result` differs from the old documents in exactly the spliced values (`added`: the
    values written where there was none, which must be the only new ones)."""
    first = splices[0].assignment
    if fast and not added:
        # The common case, told from libyaml's events of `result` without building its tree.
        spans = {(s.node.start, s.node.end): (s.assignment.value, s.tag) for s in splices}
        if yamlio.reads_as(old_docs, result, spans):
            return
    try:
        new_docs = _parse(result, source, fast=fast)
    except ManifestError as exc:
        raise EditError(f"edited text no longer parses: {exc.message}", where=_where(source, first)) from exc
    before = _flatten(old_docs)
    after = _flatten(new_docs)
    if before.keys() | (added or set()) != after.keys() or len(old_docs) != len(new_docs):
        raise EditError("edit changed the structure of the document", where=_where(source, first))
    changed = {(s.assignment.document, s.assignment.pointer): s for s in splices}
    for key in added or ():
        gap = changed[key]
        if after[key] != ("scalar", gap.tag, gap.assignment.value, False):
            raise EditError(
                f"added value would load as {after[key][2]!r} ({after[key][1]}), not {gap.assignment.value!r}",
                where=_where(source, gap.assignment),
            )
    for key, old in before.items():
        new = after[key]
        splice = changed.get(key)
        if splice is None:
            if new != old:
                raise EditError(f"edit would also change {key[1]!r}", where=f"{source} {key[0]}:{key[1]}")
        elif new != ("scalar", splice.tag, splice.assignment.value, False):
            raise EditError(
                f"value would load as {new[2]!r} ({new[1]}), not {splice.assignment.value!r}",
                where=_where(source, splice.assignment),
            )
