"""What a cycle reads from the policy's working copy before it plans: the targets under the policy's
paths (with the text of the files that hold them), the bot's history, and every image's tags.

Owns the scan of a checkout (a path the branch lacks is an error in the policy; files too large to read
become problems) and the tag lookups, side by side (a failing registry spoils only the images it serves).
It decides nothing and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

from gitbot.config import Policy
from gitbot.domain import Target
from gitbot.errors import ConfigError, MissingPathError, RegistryError, RemoteError
from gitbot.history import History, read_history
from gitbot.manifests import Problem, ScanCache, scan_files
from gitbot.planner import LookupFailure, lookup_failures
from gitbot.ports import Checkout, Registry
from gitbot.texts import TextsOnDemand


def read_exact(path: Path) -> str:
    """A file's text with its line endings untouched (text mode would turn CRLF into LF)."""
    return path.read_bytes().decode("utf-8")


def read_texts(checkout: Checkout, files: Collection[str]) -> dict[str, str]:
    """The text of `files` in the working copy (line endings untouched), sorted by path; no files, no read."""
    if not files:
        return {}
    data = checkout.read(sorted(files))
    return {file: data[file].decode("utf-8") for file in sorted(files)}


def scan_checkout(
    policy: Policy,
    checkout: Checkout,
    cache: ScanCache | None = None,
    problems: list[Problem] | None = None,
    texts: TextsOnDemand | None = None,
) -> list[Target]:
    """The targets under the policy's paths; a path the branch does not have is an error in the policy.

    Files too large to read are skipped and added to `problems` (when given). `texts` (when given) gets the
    text of every file holding a target, as the scan read it.
    """
    paths = policy.spec.git.paths
    try:
        files = checkout.files(paths)
        scan = scan_files(
            files,
            checkout.read,
            cache=cache,
            max_file_size=policy.spec.git.max_file_size,
            keep_texts=texts is not None,
        )
        targets = list(scan.targets)
    except MissingPathError as exc:
        index = paths.index(exc.where) if exc.where in paths else None
        pointer = "/spec/git/paths" + (f"/{index}" if index is not None else "")
        raise ConfigError(
            f"{exc.where!r} does not exist on branch {policy.spec.git.branch} (at {checkout.head[:12]}); "
            "fix the path or add it to the branch",
            where=policy.where(pointer),
        ) from exc
    if cache is not None:
        # The cache follows the tree: blobs no longer in it are dropped, new ones kept for the next cycle.
        cache.prune()
        with suppress(OSError):  # an unwritable cache only makes the next scan slower
            cache.save()
    if problems is not None:
        problems.extend(scan.problems)
    if texts is not None:
        texts.update(scan.texts)
        # Files the cache knew were not read by the scan: those holding targets are read together when the
        # cycle first needs one (a cycle that changes nothing needs none).
        texts.read_later({t.file for t in targets})
    return targets


# Lookups of one cycle in flight at once; the registry adapter holds each host to its own, lower limit.
_LOOKUP_THREADS = 32


def _look_up_side_by_side(registry: Registry, repositories: Sequence[str]) -> dict[str, Sequence[str] | RemoteError]:
    """Each distinct repository's tags (or the error of its lookup), looked up side by side: independent
    images cost one round trip, not one each."""
    unique = list(dict.fromkeys(repositories))

    def one(repository: str) -> Sequence[str] | RemoteError:
        try:
            return registry.list_tags(repository)
        except RemoteError as exc:
            return exc

    if len(unique) <= 1:
        return {repository: one(repository) for repository in unique}
    with ThreadPoolExecutor(max_workers=min(len(unique), _LOOKUP_THREADS), thread_name_prefix="tags") as pool:
        return dict(zip(unique, pool.map(one, unique), strict=True))


def list_image_tags(
    policy: Policy, registry: Registry, progress: Callable[[str], None] = lambda _stage: None
) -> tuple[dict[str, Sequence[str]], tuple[LookupFailure, ...]]:
    """Every image's tags, each lookup on its own: a failing registry spoils only the images it serves.

    When every lookup failed and the policy has no canary, nothing is left for the cycle to do: it fails
    with that error as a whole (and the daemon backs off), rather than reporting an empty success.
    """
    tags: dict[str, Sequence[str]] = {}
    errors: dict[str, RemoteError] = {}
    for image in policy.spec.images:
        progress(f"tags {image.name}")
    answers = _look_up_side_by_side(registry, [image.repository for image in policy.spec.images])
    for image in policy.spec.images:
        answer = answers[image.repository]
        if isinstance(answer, RemoteError):
            errors[image.name] = answer
        else:
            tags[image.name] = answer
    failures = tuple(
        replace(failure, retryable=errors[failure.image].retryable, exit_code=errors[failure.image].exit_code)
        for failure in lookup_failures(policy, {name: exc.one_line() for name, exc in errors.items()})
    )
    if errors and not tags and not policy.spec.canaries:
        if len(errors) == 1:
            raise next(iter(errors.values()))
        raise RegistryError("; ".join(f.one_line() for f in failures), hint="retry later")
    return tags, failures


def gather(
    policy: Policy,
    checkout: Checkout,
    registry: Registry,
    cache: ScanCache | None = None,
    progress: Callable[[str], None] = lambda _stage: None,
    problems: list[Problem] | None = None,
) -> tuple[list[Target], Mapping[str, str], History, dict[str, Sequence[str]], tuple[LookupFailure, ...]]:
    """Scan the working copy, read history and list tags: everything the planner needs, and failed lookups."""
    progress("scan")
    texts = TextsOnDemand(lambda files: read_texts(checkout, files))
    # Each manifest is read at most once a cycle: the planner edits the texts the scan read.
    targets = scan_checkout(policy, checkout, cache, problems, texts)
    progress("history")
    history = read_history(checkout.log(), policy.name)
    tags, failures = list_image_tags(policy, registry, progress)
    return targets, texts, history, tags, failures
