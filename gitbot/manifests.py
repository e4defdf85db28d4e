"""Finding the values gitbot manages in Kubernetes YAML: scanning text and trees into `Target`s.

This module owns the rules for what a target is (pod-template images, kustomize `images:`, Helm values
images, Flux setter markers, and the weights of the route kinds in `gitbot.routes`), the byte screen that
skips files which cannot hold one, the size limit past which a file is not read and the files that do not
parse (each reported as a `Problem`, with what such a text names, while the rest of the scan goes on), and
the content-addressed `ScanCache`, which remembers both targets and parse failures. `scan_text` is pure; file
reading is confined to `scan_tree`, `walk_files` and the cache's own load/save; `scan_files` scans from a
listing of git's objects (path, blob id, size) and reads only the blobs the cache does not know, parsing
them in worker processes (`gitbot.workers`) when there are many. It never edits anything.

Istio treats a lone destination without a weight as 100: such a weight is not a target. Gateway API defaults a
missing backend weight to 1: in a rule where another backend writes a weight, such a weight is an `implicit`
target, which an edit writes next to its backendRef.
A scalar shared through an anchor and its aliases is not reported: it cannot be changed on its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from gitbot import routes, workers, yamlio
from gitbot.atomic import replace_text
from gitbot.domain import Destination, Target, TargetKind
from gitbot.errors import GitbotError, ManifestError, MissingPathError
from gitbot.ports import TreeFile

# Manifests are a few kilobytes; a file past this is not read (policy `spec.git.maxFileSize` overrides it).
MAX_FILE_SIZE = 1024 * 1024

_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "Rollout": ("spec", "template", "spec"),
    "PodTemplate": ("template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_MARKER = re.compile(r'#[ \t]*\{[ \t]*"\$imagepolicy"[ \t]*:[ \t]*"([^"]+)"[ \t]*\}')
_MARKER_KINDS: dict[str, TargetKind] = {"tag": "tag", "name": "name", "digest": "digest"}
_SCREEN = (b"image", b"weight")
_KUSTOMIZE_PARTS: tuple[tuple[str, TargetKind], ...] = (
    ("newName", "name"),
    ("newTag", "tag"),
    ("digest", "digest"),
)
_VALUES_PARTS: tuple[tuple[str, TargetKind], ...] = (
    ("repository", "name"),
    ("tag", "tag"),
    ("digest", "digest"),
)
_EDITABLE_STYLES = ("plain", "single", "double")


def _editable(node: yamlio.Node | None) -> bool:
    return (
        node is not None
        and node.kind == "scalar"
        and not node.shared
        and node.style in _EDITABLE_STYLES
        and node.end > node.start
    )


class _DocScan:
    """Collects the targets of one document, keyed by pointer so a marker and a rule name one target."""

    def __init__(self, file: str, doc: yamlio.Document) -> None:
        self.file = file
        self.doc = doc
        self.found: dict[str, tuple[int, Target]] = {}
        root = doc.root
        self.root = root if root is not None and root.kind == "mapping" else None
        meta = self.root.get("metadata") if self.root else None
        self.kind = (self.root.scalar("kind") if self.root else None) or ""
        self.api = (self.root.scalar("apiVersion") if self.root else None) or ""
        name = (meta.scalar("name") if meta else None) or ""
        namespace = (meta.scalar("namespace") if meta else None) or ""
        self.resource = f"{self.kind or 'Values'}/{namespace}/{name}"
        self.unmanaged = _unmanaged_reason(meta)
        # Pointer -> the image policy a setter marker on its scalar names.
        self.markers: dict[str, str] = {}

    def add(self, pointer: str, node: yamlio.Node | None, kind: TargetKind, source: str, **extra: Any) -> None:
        if node is None or not _editable(node):
            return
        marker = self.markers.get(pointer)
        if marker is not None:
            extra["marker"] = marker
        target = Target(
            file=self.file,
            document=self.doc.index,
            pointer=pointer,
            line=node.line + 1,
            column=node.column + 1,
            kind=kind,
            resource=self.resource,
            value=node.value,
            source=source,
            unmanaged=self.unmanaged,
            **extra,
        )
        self.found.setdefault(pointer, (node.start, target))


def _unmanaged_reason(meta: yamlio.Node | None) -> str | None:
    if meta is None:
        return None
    annotations = meta.get("annotations")
    if annotations is not None and annotations.scalar("kustomize.toolkit.fluxcd.io/reconcile") == "disabled":
        return "reconcile-disabled"
    labels = meta.get("labels")
    if labels is not None and labels.scalar("app.kubernetes.io/managed-by") == "flagger":
        return "flagger"
    owners = meta.get("ownerReferences")
    if owners is not None:
        for owner in owners.children:
            if (owner.scalar("apiVersion") or "").startswith("flagger.app/"):
                return "flagger"
    return None


def _child(node: yamlio.Node | None, pointer: str, *keys: str) -> tuple[yamlio.Node | None, str]:
    for key in keys:
        if node is None:
            break
        node = node.get(key)
        pointer = f"{pointer}/{yamlio.escape_token(key)}"
    return node, pointer


def _scan_pod_spec(scan: _DocScan) -> None:
    path = _POD_SPEC_PATHS.get(scan.kind)
    if path is None or scan.root is None:
        return
    if scan.kind == "Rollout" and not scan.api.startswith("argoproj.io/"):
        return
    spec, pointer = _child(scan.root, "", *path)
    if spec is None:
        return
    for list_name in _CONTAINER_LISTS:
        containers = spec.get(list_name)
        if containers is None:
            continue
        for i, container in enumerate(containers.children):
            scan.add(
                f"{pointer}/{list_name}/{i}/image",
                container.get("image"),
                "image",
                "container",
                container=container.scalar("name"),
            )


def _scan_kustomize_images(scan: _DocScan, images: yamlio.Node | None, pointer: str) -> None:
    if images is None:
        return
    for i, entry in enumerate(images.children):
        if entry.kind != "mapping":
            continue
        name = entry.scalar("name")
        new_name = entry.scalar("newName") or name
        ref = f"{new_name}:{entry.scalar('newTag')}" if entry.scalar("newTag") else new_name
        for key, kind in _KUSTOMIZE_PARTS:
            scan.add(f"{pointer}/{i}/{key}", entry.get(key), kind, "kustomize", container=name, ref=ref)


def _looks_like_kustomize(root: yamlio.Node) -> bool:
    """A kustomization without apiVersion/kind: `images:` entries that name an image and override it."""
    images = root.get("images")
    if images is None or images.kind != "sequence" or not images.children:
        return False
    return all(
        entry.kind == "mapping" and entry.get("name") is not None and len(entry.items) > 1 for entry in images.children
    )


def _image_mapping_ref(image: yamlio.Node) -> str:
    repository = image.scalar("repository") or ""
    registry = image.scalar("registry")
    ref = f"{registry}/{repository}" if registry else repository
    if image.scalar("tag"):
        ref += f":{image.scalar('tag')}"
    if image.scalar("digest"):
        ref += f"@{image.scalar('digest')}"
    return ref


def _scan_values(scan: _DocScan, node: yamlio.Node | None, pointer: str, context: str | None) -> None:
    """Helm values: `image: repo:tag` strings and `image: {registry?, repository, tag}` mappings."""
    if node is None or node.alias:
        return
    if node.kind == "sequence":
        for i, child in enumerate(node.children):
            _scan_values(scan, child, f"{pointer}/{i}", context)
        return
    if node.kind != "mapping":
        return
    own_name = node.scalar("name") or context
    for key, value in node.items:
        if key.kind != "scalar":
            continue
        child_pointer = f"{pointer}/{yamlio.escape_token(key.value)}"
        if key.value == "image":
            if value.kind == "scalar" and value.tag == yamlio.STR_TAG:
                scan.add(child_pointer, value, "image", "helm-values", container=own_name)
                continue
            if value.kind == "mapping" and (value.get("repository") or value.get("tag")) is not None:
                ref = _image_mapping_ref(value)
                for part, kind in _VALUES_PARTS:
                    scan.add(
                        f"{child_pointer}/{part}",
                        value.get(part),
                        kind,
                        "helm-values",
                        container=own_name,
                        ref=ref,
                    )
                continue
        _scan_values(scan, value, child_pointer, key.value)


def _scan_weights(scan: _DocScan) -> None:
    route_kind = routes.recognise(scan.kind, scan.api)
    if scan.root is None or route_kind is None:
        return
    slots = list(route_kind.weights(scan.root))
    # A rule that writes some weight: its backends without one are in the split and may be moved.
    weighed = {slot.route for slot in slots if slot.weight is not None}
    for slot in slots:
        if (
            slot.weight is None
            and slot.route in weighed
            and route_kind.default_weight is not None
            and slot.entry.kind == "mapping"
        ):
            scan.found.setdefault(
                slot.pointer,
                (
                    slot.entry.start,
                    Target(
                        file=scan.file,
                        document=scan.doc.index,
                        pointer=slot.pointer,
                        line=slot.entry.line + 1,
                        column=slot.entry.column + 1,
                        kind="weight",
                        resource=scan.resource,
                        value=str(route_kind.default_weight),
                        route=slot.route,
                        destination=str(slot.destination),
                        source=route_kind.source,
                        unmanaged=scan.unmanaged,
                        backend=slot.destination,
                        implicit=True,
                    ),
                ),
            )
            continue
        scan.add(
            slot.pointer,
            slot.weight,
            "weight",
            route_kind.source,
            route=slot.route,
            destination=str(slot.destination),
            backend=slot.destination,
        )


def _marker_hits(scan: _DocScan, text: str, markers: list[re.Match[str]]) -> dict[str, tuple[yamlio.Node, TargetKind]]:
    """The Flux setter markers of the document, each on the scalar that ends just before it on the same line:
    sets `scan.markers` (pointer -> the policy of its last marker) and returns pointer -> (node, the kind its
    first marker names)."""
    ends: list[int] = []
    for match in markers:
        pos = match.start()
        while pos > 0 and text[pos - 1] in " \t":
            pos -= 1
        ends.append(pos)
    by_end = yamlio.scalars_ending_at(scan.doc.root, set(ends))
    hits: dict[str, tuple[yamlio.Node, TargetKind]] = {}
    for match, pos in zip(markers, ends, strict=True):
        hit = by_end.get(pos)
        if hit is None or pos == match.start():
            continue
        pointer, node = hit
        parts = match.group(1).split(":")
        kind: TargetKind = "image"
        if len(parts) == 3 and parts[2] in _MARKER_KINDS:
            kind = _MARKER_KINDS[parts[2]]
        scan.markers[pointer] = ":".join(parts[:2])
        hits.setdefault(pointer, (node, kind))
    return hits


def _scan_markers(scan: _DocScan, hits: Mapping[str, tuple[yamlio.Node, TargetKind]]) -> None:
    """Marked scalars no rule found are targets of their own (a rule's target took its marker when added)."""
    for pointer, (node, kind) in hits.items():
        if pointer not in scan.found:
            scan.add(pointer, node, kind, "marker")


def scan_text(file: str, text: str, *, fast: bool = True) -> list[Target]:
    """Every target in every document of `text` (named `file` in targets and errors), in document order.

    `fast` locates with libyaml where it can (`yamlio.parse_fast`); False uses ruamel.yaml only.
    """
    docs = yamlio.parse_fast(text, file) if fast else yamlio.parse(text, file)
    markers = list(_MARKER.finditer(text)) if "$imagepolicy" in text else []
    targets: list[Target] = []
    for doc in docs:
        scan = _DocScan(file, doc)
        # Markers first, so that a rule's target is made with its marker (not made again to add it).
        hits = _marker_hits(scan, text, markers) if markers else {}
        if scan.root is not None:
            _scan_pod_spec(scan)
            if scan.api.startswith("kustomize.config.k8s.io/") or (not scan.kind and _looks_like_kustomize(scan.root)):
                _scan_kustomize_images(scan, scan.root.get("images"), "/images")
            elif scan.kind == "Kustomization" and scan.api.startswith("kustomize.toolkit.fluxcd.io/"):
                images, pointer = _child(scan.root, "", "spec", "images")
                _scan_kustomize_images(scan, images, pointer)
            elif scan.kind == "HelmRelease":  # Flux v2 and the older helm.fluxcd.io / flux.weave.works
                values, pointer = _child(scan.root, "", "spec", "values")
                _scan_values(scan, values, pointer, None)
            elif not scan.kind and not scan.api:
                _scan_values(scan, scan.root, "", None)
            _scan_weights(scan)
        if hits:
            # Offsets are global, so a marker only ever matches a scalar end of its own document.
            _scan_markers(scan, hits)
        targets.extend(t for _, t in sorted(scan.found.values(), key=lambda item: item[0]))
    return targets


def blob_id(data: bytes) -> str:
    """The git blob id of `data` (the cache key: it names the content, wherever it lives)."""
    digest = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
    digest.update(data)
    return digest.hexdigest()


def may_hold_targets(data: bytes) -> bool:
    """The byte screen: a file without these words cannot hold a target and is never parsed."""
    return any(word in data for word in _SCREEN)


@lru_cache(maxsize=1)
def _rules_id() -> str:
    """Names the scanning rules: a cache written by other rules (another gitbot version) is not used."""
    digest = hashlib.sha1(usedforsecurity=False)
    for module in (__file__, yamlio.__file__, *map(str, Path(routes.__file__).parent.glob("*.py"))):
        digest.update(Path(module).read_bytes())
    return digest.hexdigest()


def _target(file: str, row: Any) -> Target | None:
    """A target from its cache entry (`_entry`), or None when the entry is not one (a damaged cache).

    Built without `Target.__init__`: a frozen dataclass sets each field through `object.__setattr__`, which
    made building the targets of 10,000 cached files cost more than reading the cache; the entry was made
    from a Target, so it holds every field, in `_ENTRY_FIELDS` order.
    """
    if type(row) is not list or len(row) != len(_ENTRY_FIELDS):
        return None
    target = object.__new__(Target)
    values = target.__dict__
    values.update(zip(_ENTRY_FIELDS, row, strict=True))
    values["file"] = file
    backend = values["backend"]
    if backend is not None:
        try:
            values["backend"] = Destination(tuple((str(name), str(value)) for name, value in backend))
        except (TypeError, ValueError):
            return None
    return target


# The fields of `Mentions`, as a failure record in the cache keeps them (sorted lists).
_MENTION_PARTS = ("kinds", "names", "markers")
_FAILURE_KEYS = {"line", "why", *_MENTION_PARTS}
_ENTRY_FIELDS = tuple(f.name for f in dataclass_fields(Target) if f.name != "file")


def _entry(target: Target) -> list[Any]:
    """The cache entry of a target: its fields but the file, in `_ENTRY_FIELDS` order (a list, which JSON
    reads back faster than an object of named fields), a backend as its `[name, value]` pairs."""
    row = [getattr(target, name) for name in _ENTRY_FIELDS]
    if target.backend is not None:
        row[_ENTRY_FIELDS.index("backend")] = [list(pair) for pair in target.backend.fields]
    return row


class ScanCache:
    """Scan results keyed by blob id, in memory and optionally in `directory/scan-cache.json`.

    The targets of a blob do not depend on where the file lives, so the blob id alone is the key; the
    file name is filled in on the way out.
    """

    FILE_NAME = "scan-cache.json"

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._entries: dict[str, list[list[Any]]] = {}
        # Blobs that do not parse, as `unparsable` saw them: a broken file is not parsed again every cycle.
        self._failures: dict[str, dict[str, Any]] = {}
        # The targets already made of an entry for a file: a bot that scans the same tree every cycle builds
        # each one once, not once a cycle (targets are frozen, so handing out the same ones is safe).
        self._built: dict[tuple[str, str], tuple[Target, ...]] = {}
        self._used: set[str] = set()
        self._dirty = False
        self.hits = 0
        self.misses = 0
        if directory is not None:
            self._load(directory / self.FILE_NAME)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # a missing or damaged cache is only slower, never wrong
        if isinstance(data, dict) and data.get("version") == _rules_id() and isinstance(data.get("entries"), dict):
            self._entries = data["entries"]
            failures = data.get("failures")
            if isinstance(failures, dict) and all(
                isinstance(entry, dict) and entry.keys() >= _FAILURE_KEYS for entry in failures.values()
            ):
                self._failures = failures

    def knows(self, key: str) -> bool:
        """Whether the cache holds the targets or the parse failure of blob `key` (no hit or miss counted)."""
        return key in self._entries or key in self._failures

    def get(self, key: str, file: str) -> list[Target] | Problem | None:
        """The targets of blob `key` named as `file`, the Problem of a blob that does not parse, or None."""
        failure = self._failures.get(key)
        if failure is not None:
            self._used.add(key)
            self.hits += 1
            mentions = Mentions(*(frozenset(failure[part]) for part in _MENTION_PARTS))
            return Problem(file, failure["line"], failure["why"], mentions)
        built = self._built.get((key, file))
        if built is None:
            entry = self._entries.get(key)
            made = [_target(file, row) for row in entry] if type(entry) is list else [None]
            if any(target is None for target in made):  # unknown, or a damaged entry: scanned again
                self.misses += 1
                return None
            built = self._built[(key, file)] = tuple(target for target in made if target is not None)
        self._used.add(key)
        self.hits += 1
        return list(built)

    def put(self, key: str, targets: Sequence[Target] | Problem) -> None:
        if isinstance(targets, Problem):
            mentions = targets.mentions or Mentions()
            self._failures[key] = {
                "line": targets.line,
                "why": targets.why,
                **{part: sorted(getattr(mentions, part)) for part in _MENTION_PARTS},
            }
            self._used.add(key)
            self._dirty = True
            return
        known = key in self._entries
        self._entries[key] = [_entry(target) for target in targets]
        self._used.add(key)
        self._dirty = True
        if known:  # targets are built only from an entry: a new key has none to forget
            for stale in [built for built in self._built if built[0] == key]:
                del self._built[stale]

    def prune(self) -> int:
        """Forget every entry not read or written since the last prune; return how many were dropped.

        A bot scanning the same tree every cycle calls this after each scan, so the cache holds the blobs of
        the current tree only instead of every version it ever saw.
        """
        stale = [key for key in self._entries if key not in self._used]
        for key in stale:
            del self._entries[key]
        broken = [key for key in self._failures if key not in self._used]
        for key in broken:
            del self._failures[key]
        stale += broken
        self._built = {built: targets for built, targets in self._built.items() if built[0] in self._used}
        self._used = set()
        self._dirty = self._dirty or bool(stale)
        return len(stale)

    def save(self) -> None:
        """Write the on-disk cache atomically (no-op without a directory or without news)."""
        if self.directory is None or not self._dirty:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(
            {"version": _rules_id(), "entries": self._entries, "failures": self._failures}, separators=(",", ":")
        )
        replace_text(self.directory / self.FILE_NAME, payload)
        self._dirty = False


def _yaml_files(root: Path, paths: Sequence[str]) -> Iterator[Path]:
    top = root.resolve()
    for name in paths:
        path = root / name
        inside = Path(os.path.normpath(top / name)).is_relative_to(top)
        if inside and path.exists() and not path.resolve().is_relative_to(top):
            # A linked folder on the way (`clusters -> /`) would have the bot read and write outside it.
            raise ManifestError("leads outside the repository through a symbolic link", where=name)
        if path.is_symlink():
            # A link in a checked-out repository may point anywhere (a device, a file outside it); an edit
            # would be written through it. Manifests are read and written as themselves only.
            raise ManifestError("is a symbolic link; gitbot reads manifests only as regular files", where=name)
        if path.is_file():
            yield path
            continue
        if not path.is_dir():
            if path.exists():
                raise ManifestError("not a regular file or directory", where=name)
            raise MissingPathError("no such file or directory", where=name)
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                file = Path(dirpath) / filename
                # Links and special files (a FIFO would block the read, /dev/zero never ends) are skipped.
                if filename.endswith((".yaml", ".yml")) and stat.S_ISREG(file.lstat().st_mode):
                    yield file


def _no_progress(done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class Mentions:
    """What the text of a file that does not parse names: its `kind:` and `name:` values and the image
    policies of its setter markers, read as plain text. A resource that is not found may live there."""

    kinds: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()
    markers: frozenset[str] = frozenset()

    def may_hold(self, resource: str) -> bool:
        """Whether `Kind/namespace/name` could be written in the file (a templated name cannot be edited)."""
        kind, name = resource.split("/")[0], resource.split("/")[-1]
        return not name or (name in self.names and (kind in self.kinds or not self.kinds))


@dataclass(frozen=True)
class Problem:
    """A file a scan could not take in, where (`line` None: the whole file) and why; the scan went on.

    Problems of the policy itself (an image or canary left out because of such a file, an image held) are at
    the policy file's line, with `scope` "policy" and `blocks` naming what the cycle left out, if anything.
    """

    file: str
    line: int | None
    why: str
    # An unparsable file's names, to tell which named targets it may hold; None: not read, it may hold any.
    mentions: Mentions | None = field(default=None, compare=False, repr=False)
    scope: Literal["file", "policy"] = field(default="file", compare=False)
    blocks: str | None = field(default=None, compare=False)

    @property
    def where(self) -> str:
        """`file:line`, or the file alone when the whole file is at fault."""
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def __str__(self) -> str:
        return " ".join(f"{self.where}: {self.why}".split())


def held_in(problems: Sequence[Problem], resource: str = "", *, marker: str = "") -> str:
    """The files among `problems` that may hold `resource` (or a setter marker of image policy `marker`), as
    `not read: a.yaml; not parsed: b.yaml:3`; "" when none may. A file not read may hold anything; a marker
    is looked for only in the text of a file that was read."""
    unread = [p.file for p in problems if p.scope == "file" and p.mentions is None and not marker]
    unparsed = [
        p.where
        for p in problems
        if p.mentions is not None and (p.mentions.may_hold(resource) if not marker else marker in p.mentions.markers)
    ]
    return "; ".join(
        f"{label}: {', '.join(files)}" for label, files in (("not read", unread), ("not parsed", unparsed)) if files
    )


@dataclass(frozen=True)
class Scan:
    """What a scan found: the targets of every file it read, and the files it could not take in."""

    targets: tuple[Target, ...]
    problems: tuple[Problem, ...] = ()
    # With `keep_texts`: the text of every file that holds a target, so nothing needs to open it again.
    texts: Mapping[str, str] = field(default_factory=dict)


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{count} bytes"


def _read_bounded(path: Path, rel: str, limit: int) -> bytes | Problem:
    """The bytes of `path`, or a Problem when it holds more than `limit` (never more is read than that)."""
    too_big = f"larger than the {_size(limit)} limit for a manifest; not read (raise spec.git.maxFileSize)"
    try:
        if path.stat().st_size > limit:
            return Problem(rel, None, too_big)
        with path.open("rb") as handle:
            # The file may grow between the look and the read: read one byte past the limit to tell.
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ManifestError(f"cannot read: {exc.strerror}", where=rel) from exc
    return Problem(rel, None, too_big) if len(data) > limit else data


def _decoded(data: bytes, rel: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ManifestError(f"not UTF-8 (byte {exc.start})", where=f"{rel}:{line}") from exc


# How the reason of a file that does not parse ends: it was skipped, and the scan went on.
NOT_SCANNED = "; not scanned"
_MENTION = re.compile(r"""(?:^|[\s{,])["']?(kind|name)["']?[ \t]*:[ \t]*["']?([A-Za-z0-9][A-Za-z0-9._-]*)""", re.M)


def unparsable(file: str, data: bytes, error: ManifestError) -> Problem:
    """The Problem of a file whose text is not YAML gitbot can read: where and why, and what the text names.

    Such a file (a Helm template, a half-written file, a duplicate key) is skipped, as Flux and Renovate do;
    only a named target that is not found elsewhere and may live in it is held back with it.
    """
    where = error.where or file
    line = where[len(file) + 1 :] if where.startswith(f"{file}:") else ""
    text = data.decode("utf-8", errors="replace")
    found: dict[str, set[str]] = {"kind": set(), "name": set()}
    for match in _MENTION.finditer(text):
        found[match.group(1)].add(match.group(2))
    markers = {match.group(1).split(":")[:2][-1] for match in _MARKER.finditer(text)}
    mentions = Mentions(frozenset(found["kind"]), frozenset(found["name"]), frozenset(markers))
    return Problem(file, int(line) if line.isdigit() else None, f"{error.message}{NOT_SCANNED}", mentions)


def scan_paths(
    root: Path,
    paths: Sequence[str],
    *,
    cache: ScanCache | None = None,
    progress: Callable[[int, int], None] = _no_progress,
    max_file_size: int = MAX_FILE_SIZE,
) -> list[Target]:
    """Every target in the YAML files at `paths`, as `scan_tree`; a problem file raises ManifestError."""
    scan = scan_tree(root, paths, cache=cache, progress=progress, max_file_size=max_file_size)
    if scan.problems:
        first = scan.problems[0]
        raise ManifestError(
            first.why.removesuffix(NOT_SCANNED),
            where=first.file if first.line is None else f"{first.file}:{first.line}",
        )
    return list(scan.targets)


def scan_tree(
    root: Path,
    paths: Sequence[str],
    *,
    cache: ScanCache | None = None,
    progress: Callable[[int, int], None] = _no_progress,
    max_file_size: int = MAX_FILE_SIZE,
    keep_texts: bool = False,
) -> Scan:
    """Every target in the YAML files at `paths` (files or directories, relative to `root`).

    Files are named relative to `root` in posix form; directories are walked recursively for `*.yaml` and
    `*.yml`, skipping hidden ones. A file larger than `max_file_size` bytes is not read, and one that is not
    UTF-8 or not YAML is not scanned: each is reported as a Problem and the scan goes on. `progress` is
    called with (files done, files in all) before each file and once at the end. With `keep_texts`, the
    scan also returns the text of each file holding a target (`Scan.texts`).
    """
    targets: list[Target] = []
    texts: dict[str, str] = {}
    problems: list[Problem] = []
    seen: set[str] = set()
    files = list(_yaml_files(root, paths))
    for done, path in enumerate(files):
        progress(done, len(files))
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
        if rel in seen:
            continue
        seen.add(rel)
        data = _read_bounded(path, rel, max_file_size)
        if isinstance(data, Problem):
            problems.append(data)
            continue
        if not may_hold_targets(data):
            continue
        key = blob_id(data)
        cached = cache.get(key, rel) if cache is not None else None
        text = None
        if cached is None:
            try:
                text = _decoded(data, rel)
                cached = scan_text(rel, text)
            except ManifestError as exc:
                cached = unparsable(rel, data, exc)
            if cache is not None:
                cache.put(key, cached)
        if isinstance(cached, Problem):
            problems.append(cached)
            continue
        if keep_texts and cached:
            texts[rel] = text if text is not None else _decoded(data, rel)
        targets.extend(cached)
    progress(len(files), len(files))
    return Scan(tuple(targets), tuple(problems), texts)


# -- scanning from a listing (git's objects) instead of a working tree ---------------------------------------

EntryKind = Literal["file", "dir", "link", "other"]


@dataclass(frozen=True)
class Entry:
    """One entry of a tree listing: what it is, its blob id ("" for folders) and its size in bytes."""

    kind: EntryKind
    blob: str = ""
    size: int = 0


def walk_key(path: str) -> str:
    """Sorts paths as a sorted walk of their folders meets them: a folder's files first, then its subfolders.

    Each folder is `\\x01name\\x00` and the file `\\x00name`: at each level a file (`\\x00`) sorts before a
    folder (`\\x01`), and the `\\x00` after a folder's name sorts it before longer names it starts.
    """
    folders, _, name = path.rpartition("/")
    return "".join(f"\x01{folder}\x00" for folder in folders.split("/") if folder) + f"\x00{name}"


def select_files(listing: Mapping[str, Entry], paths: Sequence[str]) -> list[TreeFile] | None:
    """The files `scan_tree` would read at `paths`, chosen from `listing` (every path of a tree -> Entry).

    None when a path is not plain (absolute, `..`) or a symbolic link is on its way: then only the working
    tree can tell where it leads, and the caller scans that. MissingPathError for a path the listing lacks.
    """
    files: list[TreeFile] = []
    for name in paths:
        parts = PurePosixPath(name).parts
        if (parts and parts[0] == "/") or ".." in parts:
            return None
        norm = "/".join(parts)
        for depth in range(1, len(parts) + 1):
            above = listing.get("/".join(parts[:depth]))
            if above is not None and above.kind == "link":
                return None
        entry = Entry("dir") if not norm else listing.get(norm)
        if entry is None:
            raise MissingPathError("no such file or directory", where=name)
        if entry.kind == "file":
            files.append(TreeFile(norm, entry.blob, entry.size))
        elif entry.kind == "dir":
            prefix = f"{norm}/" if norm else ""
            found = [
                (path, item)
                for path, item in listing.items()
                if item.kind == "file"
                and path.startswith(prefix)
                and path.endswith((".yaml", ".yml"))
                and not any(part.startswith(".") for part in path[len(prefix) :].split("/")[:-1])
            ]
            found.sort(key=lambda pair: walk_key(pair[0]))
            files += [TreeFile(path, item.blob, item.size) for path, item in found]
        else:
            # A submodule: an empty folder in a working tree, nothing to read.
            continue
    return files


def walk_files(root: Path, paths: Sequence[str]) -> list[TreeFile]:
    """The files `scan_tree` reads at `paths` under the working tree `root`; blob ids unknown (""), sizes now."""
    files: list[TreeFile] = []
    for path in _yaml_files(root, paths):
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ManifestError(f"cannot read: {exc.strerror}", where=rel) from exc
        files.append(TreeFile(rel, "", size))
    return files


def _scan_blob(item: tuple[str, bytes]) -> list[Target] | None:
    path, data = item
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None  # the scan's own reading says where
    return scan_text(path, text)


def _scan_ahead(
    files: Sequence[TreeFile], contents: Mapping[str, bytes], cache: ScanCache | None, limit: int
) -> dict[str, list[Target] | GitbotError | None]:
    """The scans `scan_files` will make of the files it read, made side by side (`gitbot.workers`) when there
    are enough of them; empty when there are not, and the scan makes each in turn."""
    batch: list[tuple[str, bytes]] = []
    for file in files:
        data = contents.get(file.path)
        if data is None or len(data) > limit or not may_hold_targets(data):
            continue
        if cache is not None and not file.blob and cache.knows(blob_id(data)):
            continue
        batch.append((file.path, data))
    if len(batch) < workers.MIN_ITEMS:
        return {}
    return dict(zip((path for path, _ in batch), workers.map_ordered(_scan_blob, batch), strict=True))


def scan_files(
    files: Sequence[TreeFile],
    read: Callable[[Sequence[str]], Mapping[str, bytes]],
    *,
    cache: ScanCache | None = None,
    progress: Callable[[int, int], None] = _no_progress,
    max_file_size: int = MAX_FILE_SIZE,
    keep_texts: bool = False,
) -> Scan:
    """`scan_tree` over `files` (from `Checkout.files`), reading only what the cache does not know.

    A file whose blob id the cache holds is not read at all; the others are read in one call of `read`
    (paths -> bytes). A file the byte screen rules out is remembered as holding nothing, so it is not read
    again while its content stays the same. Same problems, errors and order of targets as `scan_tree`.
    With `keep_texts`, `Scan.texts` holds the text of each file that was read and holds a target; the
    cached files were not read, so their texts are not there (see `gather.read_texts`).
    """
    unique: list[TreeFile] = []
    seen: set[str] = set()
    for file in files:
        if file.path not in seen:
            seen.add(file.path)
            unique.append(file)
    limit_note = f"larger than the {_size(max_file_size)} limit for a manifest; not read (raise spec.git.maxFileSize)"
    known: dict[str, list[Target] | Problem] = {}
    wanted: list[str] = []
    for file in unique:
        if file.size > max_file_size:
            continue
        hit = cache.get(file.blob, file.path) if cache is not None and file.blob else None
        if hit is not None:
            known[file.path] = hit
        else:
            wanted.append(file.path)
    contents = read(wanted) if wanted else {}
    premade = _scan_ahead(unique, contents, cache, max_file_size)
    targets: list[Target] = []
    problems: list[Problem] = []
    texts: dict[str, str] = {}
    for done, file in enumerate(unique):
        progress(done, len(unique))
        if file.size > max_file_size:
            problems.append(Problem(file.path, None, limit_note))
            continue
        found = known.get(file.path)
        if found is None:
            data = contents[file.path]
            if len(data) > max_file_size:
                problems.append(Problem(file.path, None, limit_note))
                continue
            key = blob_id(data)
            if not may_hold_targets(data):
                if cache is not None:
                    cache.put(key, [])
                continue
            # A file listed without its blob id (walked on disk) may still be one the cache knows.
            found = cache.get(key, file.path) if cache is not None and not file.blob else None
            text = ""
            if found is None:
                made = premade.pop(file.path, None)
                try:
                    if isinstance(made, GitbotError):
                        raise made
                    text = _decoded(data, file.path)
                    found = scan_text(file.path, text) if made is None else made
                except ManifestError as exc:
                    found = unparsable(file.path, data, exc)
                if cache is not None:
                    cache.put(key, found)
            elif keep_texts and not isinstance(found, Problem):
                text = _decoded(data, file.path)
            if keep_texts and not isinstance(found, Problem) and found:
                texts[file.path] = text
        if isinstance(found, Problem):
            problems.append(found)
            continue
        targets.extend(found)
    progress(len(unique), len(unique))
    return Scan(tuple(targets), tuple(problems), texts)
