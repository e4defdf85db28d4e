"""Tag filters (glob, semver, regexp), tag ordering and tag selection.

This module owns what a tag *means*: whether it matches an image policy's filter, which of two tags is
newer, and which tag an environment should run (never one that `gitbot.imageref` finds is no valid OCI tag).
It is pure: no I/O, no clock, no HTTP; the registry adapter supplies tag lists and the caller supplies the
quarantine list.

Filter syntax follows Flux v1 annotations: a bare pattern or `glob:PATTERN`, `semver:RANGE` (npm-style
ranges, evaluated by the `semantic_version` package) and `regexp:RE` (Python syntax).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import semantic_version

from gitbot.domain import TagSelection
from gitbot.errors import FilterError
from gitbot.imageref import is_valid_tag

FilterKind = Literal["glob", "semver", "regexp"]
Order = Literal["semver", "numerical", "alphabetical"]
ORDERS: tuple[Order, ...] = ("semver", "numerical", "alphabetical")

# Versions as registries tag them: 1, 1.2, 1.2.3, each with an optional pre-release and build part. Missing
# minor/patch count as 0 (as Masterminds/semver reads them); validation of the identifiers is left to
# semantic_version.
_VERSION_RE = re.compile(
    r"[vV]?(?P<major>0|[1-9][0-9]*)(?:\.(?P<minor>0|[1-9][0-9]*)(?:\.(?P<patch>0|[1-9][0-9]*))?)?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+(?P<build>[0-9A-Za-z.-]+))?\Z",
    re.ASCII,
)
# Characters a glob may contain: tag characters plus fnmatch's wildcards.
_GLOB_RE = re.compile(r"[A-Za-z0-9._*?\[\]!-]+\Z", re.ASCII)
_RANGE_V_RE = re.compile(r"(?<![0-9A-Za-z.-])[vV](?=[0-9])")
_RANGE_COMMA_RE = re.compile(r"\s*,\s*")
_RANGE_OPERATOR_GAP_RE = re.compile(r"(<=|>=|<|>|=|~|\^)\s+")
# A `-` right after a digit, a wildcard or a group names a pre-release (`0.2.*-rc.*`, `\d+-rc`); one
# after a word does not (`app-*`, `sha-*`).
_NAMES_PRERELEASE_RE = re.compile(r"(?:[0-9*?\])}+]|\\d)-")
_GO_TEMPLATE_RE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class TagFilter:
    """A compiled image-policy filter.

    `text` is the filter as written; `kind` and `expression` its parsed form. `names_prerelease` is true
    when the filter itself asks for pre-releases (a `-` after a digit or wildcard in a glob or regexp, a
    pre-release in a range), in which case pre-release tags it matches are kept even when
    `allow_prerelease` is false. `glob_prefix` is a glob's literal name prefix (`app-` of `app-*`),
    removed before a tag is ordered.
    """

    text: str
    kind: FilterKind
    expression: str
    allow_prerelease: bool = False
    extract: str | None = None
    order: Order = "semver"
    names_prerelease: bool = False
    glob_prefix: str = ""
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)
    _spec: semantic_version.NpmSpec | None = field(default=None, repr=False, compare=False)

    def matches(self, tag: str) -> bool:
        """True when `tag` (assumed a valid OCI tag) passes this filter, pre-release rules included."""
        found = self._analyse(tag)
        return found is not None and self._admits(found[1])

    def _analyse(self, tag: str) -> tuple[str, semantic_version.Version | None] | None:
        """(ordered part, that part as a version) when the pattern matches `tag`, else None."""
        if self.kind == "semver":
            version = parse_version(tag)
            return None if version is None else (tag, version)
        assert self._regex is not None
        # A glob matches the tag's text as written, as Flux v1 does: `0.1.*` does not take `v0.1.3`.
        found = self._regex.match(tag) if self.kind == "glob" else self._regex.search(tag)
        if found is None:
            return None
        if self.glob_prefix and tag.startswith(self.glob_prefix):
            part = tag[len(self.glob_prefix) :]
        elif self.extract is not None:
            part = found.expand(self.extract)
        elif "version" in self._regex.groupindex:
            part = found.group("version") or ""
        else:
            part = tag
        return part, parse_version(part)

    def _admits(self, version: semantic_version.Version | None) -> bool:
        if self.kind == "semver":
            assert self._spec is not None and version is not None
            if self._spec.match(version):
                return True
            # npm ranges only admit a pre-release of a version a bound names; when the policy allows
            # pre-releases, one matches whenever its release does.
            return self.allow_prerelease and bool(version.prerelease) and self._spec.match(version.truncate("patch"))
        if version is not None and version.prerelease:
            return self.allow_prerelease or self.names_prerelease
        return True


def _fail(message: str, where: str | None) -> FilterError:
    return FilterError(
        message,
        where=where,
        hint="write glob:PATTERN, semver:RANGE (e.g. semver:~0.1) or regexp:RE with a (?P<version>...) group",
    )


def parse_filter(
    text: str,
    *,
    allow_prerelease: bool = False,
    extract: str | None = None,
    order: Order = "semver",
    where: str | None = None,
) -> TagFilter:
    """Compile an image-policy filter; a filter that does not compile raises FilterError at `where`.

    A glob must match the whole tag; a regexp is searched (anchor it with `^...$`), as Flux does.
    `extract` is a template over the regexp's named groups (`$name`, `${name}` or `\\g<name>`) giving the
    part that is ordered (kept in the filter in Python's `\\g<name>` form); it needs a `regexp:` filter.
    """
    if not isinstance(text, str):
        raise _fail(f"filter must be a string, got {type(text).__name__}", where)
    if order not in ORDERS:
        raise _fail(f"unknown order {order!r} (expected one of {', '.join(ORDERS)})", where)
    kind: FilterKind
    prefix, sep, rest = text.partition(":")
    if not sep:
        kind, expression = "glob", text
    elif prefix == "glob":
        kind, expression = "glob", rest
    elif prefix == "semver":
        kind, expression = "semver", rest
    elif prefix in ("regexp", "regex"):
        kind, expression = "regexp", rest
    else:
        raise _fail(f"unknown filter kind {prefix!r} in {text!r}", where)
    if not expression.strip():
        raise _fail(f"empty {kind} filter {text!r}", where)
    if extract is not None and kind != "regexp":
        raise _fail(f"extract {extract!r} needs a regexp: filter, not {text!r}", where)

    if kind == "glob":
        if not _GLOB_RE.match(expression):
            raise _fail(f"glob {expression!r} contains characters no tag can have", where)
        regex = re.compile(fnmatch.translate(expression), re.ASCII)
        return TagFilter(
            text=text,
            kind=kind,
            expression=expression,
            allow_prerelease=allow_prerelease,
            order=order,
            names_prerelease=_NAMES_PRERELEASE_RE.search(expression) is not None,
            glob_prefix=_glob_prefix(expression),
            _regex=regex,
        )
    if kind == "semver":
        normalised = _normalise_range(expression)
        try:
            spec = semantic_version.NpmSpec(normalised)
        except ValueError as exc:
            raise _fail(f"invalid semver range {expression!r}: {exc}", where) from exc
        return TagFilter(
            text=text,
            kind=kind,
            expression=expression,
            allow_prerelease=allow_prerelease,
            order=order,
            names_prerelease=_range_names_prerelease(normalised),
            _spec=spec,
        )
    try:
        regex = re.compile(expression)
    except re.error as exc:
        raise _fail(f"invalid regexp {expression!r}: {exc}", where) from exc
    template = None
    if extract is not None:
        template = _GO_TEMPLATE_RE.sub(lambda m: rf"\g<{m.group(1) or m.group(2)}>", extract)
        try:
            _check_template(regex, template)
        except IndexError as exc:
            raise _fail(f"extract {extract!r} does not fit regexp {expression!r}: {exc}", where) from exc
    return TagFilter(
        text=text,
        kind=kind,
        expression=expression,
        allow_prerelease=allow_prerelease,
        extract=template,
        order=order,
        names_prerelease=_NAMES_PRERELEASE_RE.search(expression) is not None,
        _regex=regex,
    )


def _normalise_range(expression: str) -> str:
    """A range in the spelling semantic_version's npm parser takes.

    npm and Masterminds accept `v1.2.3` and a space after an operator (`>= 1.0`); Masterminds (Flux) also
    joins comparators with `,` (`>=1.0.0, <2.0.0`). semantic_version takes none of these.
    """
    text = _RANGE_V_RE.sub("", expression.strip())
    text = _RANGE_COMMA_RE.sub(" ", text)
    return _RANGE_OPERATOR_GAP_RE.sub(r"\1", text)


def _glob_prefix(expression: str) -> str:
    """The literal text a glob's tags start with when it is a name, not part of a version.

    `app-*` orders `app-1.10.0` by `1.10.0`; `0.1.*` keeps the whole tag (its prefix ends in `.`).
    """
    prefix = re.split(r"[*?\[]", expression, maxsplit=1)[0]
    if prefix == expression or not prefix or prefix[-1] in "0123456789.":
        return ""
    return prefix


def _check_template(regex: re.Pattern[str], template: str) -> None:
    """Raise re.error/IndexError when `template` names a group `regex` lacks."""
    for match in re.finditer(r"\\g<(\w+)>|\\(\d+)", template):
        name = match.group(1) or match.group(2)
        if name.isdigit():
            if int(name) > regex.groups:
                raise IndexError(f"no group {name}")
        elif name not in regex.groupindex:
            raise IndexError(f"no group named {name!r}")


def _range_names_prerelease(expression: str) -> bool:
    return any(
        (version := parse_version(word.lstrip("<>=~^"))) is not None and bool(version.prerelease)
        for word in expression.split()
    )


def parse_version(text: str) -> semantic_version.Version | None:
    """`text` as a semantic version (leading `v`, partial `1.2`, `_` for `+` accepted), else None.

    OCI tags cannot hold `+`, so build metadata appears as `_` (the convention Helm uses); the first `_`
    is read as `+`.
    """
    if "+" not in text:
        text = text.replace("_", "+", 1)
    found = _VERSION_RE.match(text)
    if found is None:
        return None
    pre = found.group("pre")
    build = found.group("build")
    try:
        return semantic_version.Version(
            major=int(found.group("major")),
            minor=int(found.group("minor") or 0),
            patch=int(found.group("patch") or 0),
            prerelease=tuple(pre.split(".")) if pre else (),
            build=tuple(build.split(".")) if build else (),
        )
    except ValueError:
        return None


def _rank(tag: str, flt: TagFilter, found: tuple[str, semantic_version.Version | None] | None = None) -> _Key:
    """How `tag` is ordered: as a version (2), a number (1, numerical order only) or text (0)."""
    if found is None:
        found = flt._analyse(tag) or (tag, parse_version(tag))
    part, version = found
    if version is None and part.isascii() and part.isdigit():
        # A build number with leading zeros (`011`) is still a number, ordered with the versions.
        version = semantic_version.Version(major=int(part), minor=0, patch=0)
    if version is not None:
        # The library's precedence key without its last element (build metadata, which never orders).
        return 2, version.precedence_key[:4]
    if flt.order == "numerical":
        try:
            number = Decimal(part)
        except InvalidOperation:
            pass
        else:
            if number.is_finite():
                return 1, number
    return 0, part


_Key = tuple[int, Any]


def compare(a: str, b: str, flt: TagFilter) -> int:
    """-1, 0 or 1 as tag `a` is older than, as new as, or newer than `b` under `flt`.

    Versions rank above numbers, numbers above other text; `1.2.3`, `v1.2.3` and `1.2.3_build.7` are
    equally new.
    """
    key_a, key_b = _rank(a, flt), _rank(b, flt)
    return -1 if key_a < key_b else 1 if key_b < key_a else 0


def select(tags: Iterable[str], flt: TagFilter, *, quarantine: Collection[str] = ()) -> TagSelection:
    """Choose the newest tag that passes `flt` and is not quarantined, and say why.

    Invalid OCI tags are dropped into `ignored` whatever the filter (so nothing a registry sends can reach a
    manifest); duplicates are dropped; only the tag list is used.
    """
    # Dicts keep the registry's order and drop duplicates in one pass (a list search per tag is quadratic).
    ignored: dict[str, None] = {}
    valid: dict[str, None] = {}
    for tag in tags:
        if is_valid_tag(tag):
            valid[tag] = None
        else:
            ignored[tag] = None
    keyed = []
    for tag in valid:
        found = flt._analyse(tag)
        if found is not None and flt._admits(found[1]):
            keyed.append(((*_rank(tag, flt, found), tag), tag))
    # Each tag is parsed once; ties between equally new tags are broken by their text.
    ordered = [tag for _, tag in sorted(keyed, reverse=True)]
    blocked = set(quarantine)
    candidates = tuple(tag for tag in ordered if tag not in blocked)
    return TagSelection(
        selected=candidates[0] if candidates else None,
        candidates=candidates,
        quarantined=tuple(tag for tag in ordered if tag in blocked),
        ignored=tuple(ignored),
    )


__all__: Sequence[str] = (
    "ORDERS",
    "FilterKind",
    "Order",
    "TagFilter",
    "compare",
    "parse_filter",
    "parse_version",
    "select",
)
