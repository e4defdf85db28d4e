"""Container image references: what a reference, a tag and a digest may look like, and their parts.

This module owns the grammar of `[registry[:port]/]path[:tag][@algorithm:digest]` as the OCI distribution
specification writes it: splitting a reference into an `ImageRef`, telling a registry host from a path, and
whether a string is a valid tag. It is pure (no I/O) and knows nothing of filters or versions (those are
`gitbot.versioning`'s); a malformed reference is a ConfigError that never echoes a password written in it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gitbot.errors import ConfigError

# `\Z` rather than `$`: `$` also matches before a trailing newline, which would let "1.0\n" through.
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z", re.ASCII)
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}\Z", re.ASCII)
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z", re.ASCII)
_HOST_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?\Z",
    re.ASCII,
)
_USERINFO = re.compile(r"^[^/@\s]*:[^/@\s]*@")


@dataclass(frozen=True)
class ImageRef:
    """A container image reference split into its parts; `tag` and `digest` may be absent."""

    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def is_valid_tag(tag: object) -> bool:
    """True when `tag` is a valid OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`, nothing more."""
    return isinstance(tag, str) and _TAG_RE.match(tag) is not None


def parse_image(ref: str, *, where: str | None = None) -> ImageRef:
    """Split `[registry[:port]/]path[:tag][@algo:digest]` into an ImageRef; raise ConfigError if malformed.

    A `:` before the first `/` belongs to the registry (its port), a `:` in the last path component
    introduces the tag. The repository is kept as written (no Docker Hub normalisation here).
    """

    def bad(why: str) -> ConfigError:
        # A reference written as `user:password@host/...` is malformed, and its password must not be echoed.
        shown = _USERINFO.sub("***@", ref)
        return ConfigError(f"invalid image reference {shown!r}: {_USERINFO.sub('***@', why)}", where=where)

    if not isinstance(ref, str) or not ref or ref != ref.strip():
        raise bad("empty or surrounded by whitespace")
    name, at, digest = ref.partition("@")
    if at and not _DIGEST_RE.match(digest):
        raise bad(f"digest {digest!r} is not algorithm:hex")
    head, slash, last = name.rpartition("/")
    tag: str | None = None
    if ":" in last:
        last, _, tag = last.partition(":")
        if not is_valid_tag(tag):
            raise bad(f"tag {tag!r} is not a valid OCI tag")
    repository = f"{head}{slash}{last}"
    parts = repository.split("/")
    path = parts
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        host = _HOST_RE.match(parts[0])
        if host is None:
            raise bad(f"registry {parts[0]!r} is not host[:port]")
        if host.group("port") is not None and not 0 < int(host.group("port")) < 65536:
            raise bad(f"registry {parts[0]!r} has a port outside 1..65535")
        path = parts[1:]
    for component in path:
        if not _PATH_COMPONENT_RE.match(component):
            raise bad(f"path component {component!r} must be lowercase letters, digits and separators")
    return ImageRef(repository=repository, tag=tag, digest=digest or None)


def split_registry(repository: str) -> tuple[str | None, str]:
    """(`registry[:port]` or None when the name has no registry part, path) of an image repository."""
    first, slash, rest = repository.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, repository


__all__: Sequence[str] = ("ImageRef", "is_valid_tag", "parse_image", "split_registry")
