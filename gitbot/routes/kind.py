"""The interface of a traffic route kind, and the shape most kinds share: rules holding lists of weighted entries.

A route kind says which documents it recognises, where their weights are (with the destination each weight
sends to, as a typed `Destination`), which policy selector fields name a destination and how they match it,
and which route list a weight edit belongs to (the list whose weights must keep their sum).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from gitbot import yamlio
from gitbot.domain import Destination


@dataclass(frozen=True)
class WeightSlot:
    """One weighted entry of a route: the weight's pointer and node (None when the entry writes none), the
    index of the rule it is in, and where it sends traffic."""

    pointer: str
    route: int
    weight: yamlio.Node | None
    destination: Destination
    entry: yamlio.Node


class RouteKind(Protocol):
    """A kind of traffic route whose weights gitbot reads and moves."""

    # The resource kind as written in `kind:` and in a policy's `route: Kind/namespace/name`.
    @property
    def kind(self) -> str: ...
    # The API group (`apiVersion` before the slash).
    @property
    def group(self) -> str: ...
    # `Target.source` of its weights.
    @property
    def source(self) -> str: ...
    # How messages name one: "an HTTPRoute".
    @property
    def noun(self) -> str: ...
    # Policy selector field (`subset`, `host`, `backendRef`) -> the destination field it must equal.
    @property
    def selectors(self) -> Mapping[str, str]: ...
    # The weight of an entry that writes none, when it is one gitbot may write (Gateway API: 1); None when an
    # entry without a weight is not moved (Istio's lone destination takes all traffic).
    @property
    def default_weight(self) -> int | None: ...

    def recognises(self, kind: str, api: str) -> bool:
        """Whether a document of `kind` and `apiVersion` `api` is a route of this kind whose weights are read."""
        ...

    def weights(self, root: yamlio.Node) -> Iterator[WeightSlot]:
        """Every weighted entry of a document of this kind, in document order."""
        ...

    def route_list(self, pointer: str) -> str | None:
        """The pointer of the entry list that weight `pointer` belongs to; None when it is no weight of one."""
        ...

    def matches(self, destination: Destination | None, wanted: Mapping[str, str | None]) -> bool:
        """Whether `destination` is the one a policy's selector (`subset`/`host`/`backendRef` -> value) names."""
        ...


def _child(node: yamlio.Node | None, pointer: str, *keys: str) -> tuple[yamlio.Node | None, str]:
    for key in keys:
        if node is None:
            break
        node = node.get(key)
        pointer = f"{pointer}/{yamlio.escape_token(key)}"
    return node, pointer


@dataclass(frozen=True)
class RuleLists:
    """A route kind whose `spec.<section>[i].<entries>[j]` entries carry a `weight` (Istio's `http[].route[]`,
    Gateway API's `rules[].backendRefs[]`); the destination is read from `destination_key` of the entry
    (the entry itself when empty), field by field in `fields` order."""

    kind: str
    group: str
    source: str
    noun: str
    selectors: Mapping[str, str]
    section: str
    entries: str
    fields: tuple[str, ...]
    destination_key: str = ""
    versions: re.Pattern[str] | None = None
    default_weight: int | None = None

    def recognises(self, kind: str, api: str) -> bool:
        group, _, version = api.partition("/")
        if kind != self.kind or group != self.group or not _:
            return False
        return self.versions is None or self.versions.fullmatch(version) is not None

    def weights(self, root: yamlio.Node) -> Iterator[WeightSlot]:
        rules, pointer = _child(root, "", "spec", self.section)
        if rules is None:
            return
        for i, rule in enumerate(rules.children):
            entries = rule.get(self.entries)
            if entries is None:
                continue
            for j, entry in enumerate(entries.children):
                where = entry.get(self.destination_key) if self.destination_key else entry
                yield WeightSlot(
                    f"{pointer}/{i}/{self.entries}/{j}/weight", i, entry.get("weight"), self.destination(where), entry
                )

    def destination(self, node: yamlio.Node | None) -> Destination:
        if node is None:
            return Destination()
        found: list[tuple[str, str]] = []
        for key in self.fields:
            value = node.get(key)
            if value is None:
                continue
            if value.kind == "mapping":
                # Istio writes the port as {number: 9898}.
                number = value.scalar("number")
                if number is not None:
                    found.append((key, number))
            elif value.kind == "scalar":
                found.append((key, value.value))
        return Destination(tuple(found))

    def route_list(self, pointer: str) -> str | None:
        match = re.fullmatch(rf"/spec/{self.section}/(\d+)/{self.entries}/(\d+)/weight", pointer)
        return f"/spec/{self.section}/{match.group(1)}/{self.entries}" if match else None

    def matches(self, destination: Destination | None, wanted: Mapping[str, str | None]) -> bool:
        have = destination or Destination()
        return all(
            value is None or have.get(self.selectors[key]) == value
            for key, value in wanted.items()
            if key in self.selectors
        )
