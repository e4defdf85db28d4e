"""The git adapter (GitPython): a cached clone per repository and branch, a fresh worktree per cycle.

Owns: the bare cache repository under `cache_dir`, the per-cycle worktree, credentials passed to git through
the process environment only, and the mapping of every git failure to a `GitError` subclass whose one-line
message never contains a credential. It must not decide what to change (the planner does) and must never
force-push the environment branch.

Layout: `cache_dir/<name>-<hash>/` is a bare repository whose `origin` has the credential-free URL and
tracks only the policy's branch; each `checkout()` fetches into it and adds a detached worktree in a new
directory under `cache_dir/work/`, removed again on exit. The worktree's files are written only when the
cycle first needs them: scanning reads git's objects (`ls-tree`, `cat-file --batch`), so a cycle that
changes nothing writes no working tree, and `cache_dir/<name>-<hash>/gitbot-files.json` remembers the files chosen
at the last commit scanned, so that the next cycle at that commit lists no tree. Each work directory is claimed
by a lock file held for its life, so the next checkout (in any process sharing `cache_dir`) removes what a
killed cycle left and nothing a live one uses. `Repo` objects are opened and closed per cycle because
GitPython leaks file handles and processes in long-lived processes. A lock file serialises cycles on the
same cache so two policies sharing a repository cannot corrupt it.
"""

from __future__ import annotations

import base64
import fcntl
import glob
import hashlib
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from git import Git, GitCommandError, PushInfo, RemoteProgress, Repo
from git.exc import InvalidGitRepositoryError, NoSuchPathError

from gitbot.atomic import replace_text
from gitbot.config import url_credential_part
from gitbot.domain import Author, CommitInfo
from gitbot.errors import ConfigError, GitAuthError, GitError, PushRejectedError
from gitbot.history import landing_order
from gitbot.manifests import Entry, blob_id, select_files, walk_files
from gitbot.ports import NewCommit, RevertFinish, TreeFile

BOT_BRANCH_PREFIX = "gitbot/"
REMOTE = "origin"

_AUTH_PATTERNS = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "returned error: 401",
    "returned error: 403",
    "permission denied (publickey",
    "invalid username or password",
)
# Reasons git's receive-pack gives when it could not move a ref it accepted: another update won the race.
_REF_RACES = ("failed to update ref", "failed to lock")
_FORCED_PUSH_ATTEMPTS = 3
# An error names this many paths, and how many more there are.
_PATHS_NAMED = 10
_FIELD = "\x1f"
_TRAILER_SEP = "\x1d"
_TRAILER_KV = "\x1c"
# Commits come NUL-separated (`-z`; a message cannot hold NUL). The message sits between fields that are
# split from the left and the trailers split from the right, so control characters in it cannot shift them.
_LOG_FORMAT = (
    "%H%x1f%P%x1f%an%x1f%ae%x1f%cI%x1f%B%x1f%(trailers:only=true,unfold=true,separator=%x1d,key_value_separator=%x1c)"
)


class _PushErrorLines(logging.Filter):
    """Drops GitPython's "Error lines received while pushing" warning.

    GitPython logs git's stderr when a push has refused refs; gitbot reads the same results from the
    push and reports what matters in its own error, so the raw lines would only repeat it, unmasked.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Error lines received while pushing")


_PUSH_ERROR_LINES = _PushErrorLines()


def _safe_url(url: str) -> str:
    """`url` without user-info password, query or fragment (where tokens get pasted), fit for messages."""
    parts = urlsplit(url)
    web = parts.scheme in ("http", "https")
    if parts.scheme and (parts.password or parts.query or parts.fragment or (web and parts.username)):
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        if parts.username and not parts.password and not web:  # an SSH user (`git@`) is no secret
            host = f"{parts.username}@{host}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    return url.split("?", 1)[0].split("#", 1)[0]


class GitWorkspace:
    """A policy's git repository and branch, checked out freshly for each cycle.

    `url` is `https://...`/`http://...` (credentials from `token`, sent as an HTTP header through the
    environment) or an SSH URL (`ssh://...` or `user@host:path`, key from `ssh_key_file`). `author` is the
    default commit identity and `committer` (default: `author`) is the committer of every commit.
    """

    def __init__(
        self,
        url: str,
        branch: str,
        cache_dir: Path,
        *,
        username: str = "x-access-token",
        token: str | None = None,
        ssh_key_file: Path | None = None,
        author: Author,
        committer: Author | None = None,
        timeout: float = 120.0,
        known_hosts_file: Path | None = None,
    ) -> None:
        parts = urlsplit(url)
        # Whatever the URL holds, git keeps in the cache's config and repeats in its errors.
        if (parts.scheme in ("http", "https") and parts.username) or url_credential_part(url):
            raise ConfigError(
                f"git URL {_safe_url(url)} must not contain credentials (user info, a query or a fragment); "
                "pass the token separately",
                hint="set the token through the policy's tokenEnv",
            )
        if ssh_key_file is not None and not ssh_key_file.is_file():
            raise ConfigError(f"SSH key file {ssh_key_file} for {_safe_url(url)} does not exist")
        if not branch or not is_valid_branch(branch):
            raise ConfigError(f"git branch {branch!r} of {_safe_url(url)} is not a valid branch name")
        self.url = url
        self.branch = branch
        self.cache_dir = cache_dir
        self.author = author
        self.committer = committer or author
        self.timeout = timeout
        self._username = username
        self._token = token
        self._ssh_key_file = ssh_key_file
        self._known_hosts_file = known_hosts_file
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", parts.path.rsplit("/", 1)[-1] or "repo").strip("-.")
        digest = hashlib.sha256(f"{url}\0{branch}".encode()).hexdigest()[:16]
        self.cache_path = cache_dir / f"{slug or 'repo'}-{digest}"
        # Idempotent: a logger keeps one copy of a filter however many workspaces add it.
        logging.getLogger("git.remote").addFilter(_PUSH_ERROR_LINES)

    # -- credentials -------------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """The environment every git command of this workspace runs with.

        The credential lives only here (never in a file or the remote URL): an `http.<url>.extraHeader`
        through `GIT_CONFIG_*` for HTTPS, `GIT_SSH_COMMAND` with the key file for SSH. Prompts and
        credential helpers are switched off so a bad credential fails at once and nothing is stored.
        """
        config: list[tuple[str, str]] = [("credential.helper", "")]
        parts = urlsplit(self.url)
        if parts.scheme in ("http", "https") and self._token:
            raw = f"{self._username}:{self._token}".encode()
            scope = urlunsplit((parts.scheme, parts.netloc, "/", "", ""))
            config.append((f"http.{scope}.extraHeader", f"Authorization: Basic {base64.b64encode(raw).decode()}"))
        env = {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",
            "SSH_ASKPASS": "",
            "GIT_CONFIG_COUNT": str(len(config)),
        }
        for index, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        if self._ssh_key_file is not None:
            ssh = ["ssh", "-i", str(self._ssh_key_file), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
            if self._known_hosts_file is not None:
                ssh += ["-o", f"UserKnownHostsFile={self._known_hosts_file}"]
            env["GIT_SSH_COMMAND"] = shlex.join(ssh)
        return env

    def _secrets(self) -> list[str]:
        if not self._token:
            return []
        raw = f"{self._username}:{self._token}".encode()
        return [base64.b64encode(raw).decode(), self._token]

    def scrub(self, text: str) -> str:
        """`text` with every form of the credential replaced by `***`."""
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text

    def _credentials_sent(self) -> str:
        if urlsplit(self.url).scheme not in ("http", "https"):
            return ""
        return f" as user {self._username!r} with a token" if self._token else " (no token was sent)"

    def _auth_hint(self) -> str:
        """What was sent over HTTPS (which user, whether a token), so a wrong user is told from a bad token."""
        if urlsplit(self.url).scheme not in ("http", "https"):
            return "check the SSH key (spec.git.sshKeyFile) and its access to the repository"
        if not self._token:
            return "name the variable that holds the token in spec.git.tokenEnv"
        return (
            "check the token (spec.git.tokenEnv), its access to the repository, and the user sent with it: "
            "spec.git.username (x-access-token suits GitHub; other servers want the token's account name)"
        )

    def wrap(self, exc: GitCommandError, action: str) -> GitError:
        """A one-line, credential-free GitError for a failed git command."""
        stderr = self.scrub(str(exc.stderr or "")).strip()
        # GitPython renders stderr as `stderr: '<text>'`.
        if stderr.startswith("stderr: '") and stderr.endswith("'"):
            stderr = stderr[len("stderr: '") : -1]
        lines = [
            line.strip()
            for line in stderr.splitlines()
            if line.strip() and not line.strip().startswith(("hint:", "remote: Counting", "To "))
        ]
        detail = next(
            (ln for ln in reversed(lines) if ln.lower().startswith(("fatal:", "error:"))),
            lines[-1] if lines else f"exit status {exc.status}",
        )
        detail = re.sub(r"^(fatal|error):\s*", "", detail, flags=re.IGNORECASE)
        where = f"{_safe_url(self.url)} ({self.branch})"
        lowered = stderr.lower()
        if any(pattern in lowered for pattern in _AUTH_PATTERNS):
            if "terminal prompts disabled" in lowered or "could not read" in lowered:
                detail = "the server asked for credentials (token missing, wrong or revoked)"
            return GitAuthError(
                f"git {action} refused the credentials for {where}{self._credentials_sent()}: {detail}",
                hint=self._auth_hint(),
            )
        return GitError(f"git {action} failed for {where}: {detail}")

    # -- cache and worktree ------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.cache_path.with_name(self.cache_path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _open_cache(self) -> Repo:
        # Under the cache's lock: a half-made clone of this cache is one a killed cycle left.
        for leftover in self.cache_dir.glob(glob.escape(self.cache_path.name) + ".init-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if (self.cache_path / "HEAD").exists():
            try:
                return Repo(self.cache_path)
            except (InvalidGitRepositoryError, NoSuchPathError):
                pass
        # Missing or damaged (for example a crash mid-clone): the cache is only a copy, start it again.
        shutil.rmtree(self.cache_path, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=self.cache_path.name + ".init-", dir=self.cache_dir))
        try:
            repo = Repo.init(tmp, bare=True)
            with repo.config_writer() as config:
                config.set_value(f'remote "{REMOTE}"', "url", self.url)
                config.set_value(
                    f'remote "{REMOTE}"',
                    "fetch",
                    f"+refs/heads/{self.branch}:refs/remotes/{REMOTE}/{self.branch}",
                )
                # History is read with `--topo-order`, which walks the whole branch unless a commit-graph
                # gives generation numbers: for 500 of 50,000 commits about a second without, 10 ms with.
                config.set_value("fetch", "writeCommitGraph", "true")
            repo.close()
            # Appears atomically: a crash mid-initialisation leaves only a temp directory behind.
            tmp.rename(self.cache_path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return Repo(self.cache_path)

    def _missing_branch(self) -> GitError:
        return GitError(
            f"branch {self.branch} does not exist in {_safe_url(self.url)}",
            hint="check the policy's git.branch",
            retryable=False,
        )

    @contextmanager
    def checkout(self) -> Iterator[GitCheckout]:
        """Fetch into the cache and yield a fresh detached worktree at the remote branch head."""
        with self._locked():
            # What killed cycles left (of any repository sharing this cache directory) goes first.
            sweep_work_directories(self.cache_dir)
            cache = self._open_cache()
            try:
                cache.git.update_environment(**self.environment())
                try:
                    _unlock_abandoned_worktrees(cache)
                    cache.git.worktree("prune")
                    cache.git.fetch(REMOTE, "--prune", "--no-tags", kill_after_timeout=self.timeout)
                except GitCommandError as exc:
                    if "couldn't find remote ref" in str(exc.stderr):
                        raise self._missing_branch() from None
                    raise self.wrap(exc, "fetch") from None
                tracking = f"refs/remotes/{REMOTE}/{self.branch}"
                if not _has_ref(cache, tracking):
                    raise self._missing_branch()
                with work_directory(self.cache_dir, self.cache_path.name) as worktree:
                    try:
                        try:
                            # No files yet: a cycle that changes nothing reads git's objects only, and the
                            # working tree is written when something first needs it (`GitCheckout.root`).
                            cache.git.worktree("add", "--detach", "--no-checkout", "--force", str(worktree), tracking)
                        except GitCommandError as exc:
                            raise self.wrap(exc, "worktree add") from None
                        repo = Repo(worktree)
                        try:
                            repo.git.update_environment(**self.environment())
                            yield GitCheckout(self, repo, written=False)
                        finally:
                            repo.close()
                    finally:
                        with suppress(GitCommandError):
                            cache.git.worktree("remove", "--force", str(worktree))
                        shutil.rmtree(worktree, ignore_errors=True)
                        with suppress(GitCommandError):
                            cache.git.worktree("prune")
            finally:
                cache.close()


def _unlock_abandoned_worktrees(cache: Repo) -> None:
    """Unlock the worktrees whose directory is gone, so that `git worktree prune` removes them.

    A `git worktree add` killed before its checkout leaves its worktree registered, locked "initializing" and
    with a HEAD that names no commit; prune skips locked worktrees, and every later fetch then fails ("bad
    object .../HEAD", "did not send all necessary objects"). Called under the cache's lock, which a cycle
    holds for its worktree's whole life, so a worktree of this cache whose directory is gone has no owner.
    """
    for block in cache.git.worktree("list", "--porcelain").split("\n\n"):
        lines = block.splitlines()
        path = next((line.removeprefix("worktree ") for line in lines if line.startswith("worktree ")), "")
        if path and any(line.startswith("locked") for line in lines) and not Path(path).exists():
            cache.git.worktree("unlock", path)


WORK_DIRECTORY = "work"


@contextmanager
def work_directory(cache_dir: Path, prefix: str) -> Iterator[Path]:
    """A path for one cycle's worktree under `cache_dir/work/`, claimed by a lock file held for its life.

    `<name>.lock` is created first and held with `flock` until the directory `<name>` is removed again, so
    `sweep_work_directories` (in this or any other process sharing the cache directory) can tell a
    directory in use from one a killed process left: the kernel drops the lock when its holder dies.
    The directory itself is not created (`git worktree add` makes it).
    """
    root = cache_dir / WORK_DIRECTORY
    root.mkdir(parents=True, exist_ok=True)
    while True:
        name = f"{prefix}.{secrets.token_hex(6)}"
        lock_path = root / f"{name}.lock"
        fd = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _still_at(fd, lock_path):
            break
        # A sweep took the lock file between its creation and the lock: start again under a new name.
        os.close(fd)
    path = root / name
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        lock_path.unlink(missing_ok=True)
        os.close(fd)


def sweep_work_directories(cache_dir: Path) -> list[Path]:
    """Remove the work directories under `cache_dir/work/` whose owner is gone; return them.

    A directory is removed only while its lock file is locked here, which succeeds only when no live
    process holds it. A directory without a lock file was never in use (the lock comes first, goes last).
    """
    root = cache_dir / WORK_DIRECTORY
    try:
        entries = sorted(root.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed: list[Path] = []
    for entry in entries:
        if entry.name.endswith(".lock"):
            work = entry.with_name(entry.name.removesuffix(".lock"))
            if _remove_if_unlocked(entry, work):
                removed.append(work)
        elif not entry.with_name(entry.name + ".lock").exists() and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _remove_if_unlocked(lock_path: Path, work: Path) -> bool:
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its owner is alive
        if not _still_at(fd, lock_path):
            return False  # another sweep removed it meanwhile
        shutil.rmtree(work, ignore_errors=True)
        lock_path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def _still_at(fd: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


@contextmanager
def _input(data: bytes) -> Iterator[BinaryIO]:
    """`data` in an unnamed temporary file, rewound: standard input for a git command of any size."""
    with tempfile.TemporaryFile() as handle:
        handle.write(data)
        handle.seek(0)
        yield handle


def _has_ref(repo: Repo, ref: str) -> bool:
    try:
        repo.git.rev_parse("--verify", "--quiet", ref)
    except GitCommandError:
        return False
    return True


def is_valid_branch(name: str) -> bool:
    # The rules of `git check-ref-format --branch` (a little stricter), checked without running git.
    if name.startswith(("-", "/")) or name.endswith(("/", ".")) or "//" in name:
        return False
    if ".." in name or "@{" in name or name in ("@", "HEAD"):
        return False
    if any(ch in name for ch in " ~^:?*[\\\x7f") or any(ord(ch) < 32 for ch in name):
        return False
    return all(part and not part.startswith(".") and not part.endswith(".lock") for part in name.split("/"))


def _relative(path: str) -> str:
    parts = path.split("/")
    if path and not {"", ".", "..", ".git"} & set(parts):
        return path  # already relative and in normal form: thousands of paths skip `PurePosixPath`
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or ".git" in pure.parts:
        raise GitError(f"refusing to write {path!r}: paths must be relative and inside the repository")
    return str(pure)


# The reference `git fast-import` builds a commit series on: per worktree, so it goes with its work directory
# (it is never deleted, see `_import_commits`) and no other checkout of the cache sees it.
_IMPORT_REF = b"refs/worktree/gitbot-commits"
# Bytes a C-style quoted path escapes: the quote, the backslash and control characters.
_NEEDS_ESCAPE = re.compile(rb'["\\\x00-\x1f\x7f]')
# `git commit --cleanup=whitespace` strips these from line ends (git's own idea of white space).
_LINE_END_SPACE = " \t\r"


def object_id(data: bytes, head: str) -> str:
    """The id git gives `data` as a blob in the repository whose commit `head` is (SHA-1, or SHA-256 ids)."""
    if len(head) == 40:
        return blob_id(data)
    digest = hashlib.sha256(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


def _named(paths: Sequence[str]) -> str:
    """A bounded list of `paths` for a message: the first few, and how many more there are."""
    more = len(paths) - _PATHS_NAMED
    return ", ".join(paths[:_PATHS_NAMED]) + (f" and {more} more" if more > 0 else "")


def _clean_message(message: str) -> str:
    """`message` as `git commit --cleanup=whitespace` stores it: line ends stripped, blank lines at either
    end dropped, runs of blank lines made one, a newline at the end."""
    lines: list[str] = []
    blank = False
    for line in message.split("\n"):
        line = line.rstrip(_LINE_END_SPACE)
        if not line:
            blank = True
            continue
        if blank and lines:
            lines.append("")
        blank = False
        lines.append(line)
    return "".join(f"{line}\n" for line in lines)


def _quoted_path(path: str) -> bytes:
    """`path` as a C-style quoted string, which `git fast-import` takes whatever the path holds."""
    raw = os.fsencode(path)
    if not _NEEDS_ESCAPE.search(raw):
        return b'"%s"' % raw  # the common path: nothing to escape
    out = bytearray(b'"')
    for byte in raw:
        if byte in b'"\\':
            out += b"\\%c" % byte
        elif byte < 0x20 or byte == 0x7F:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    out += b'"'
    return bytes(out)


def _check_writable(path: str, shape: _Shape, files: Mapping[str, str]) -> None:
    """Refuse a commit's write of `path` through a symbolic link, over what is not a file, or under a file
    (`files`: the files the commit series has so far, path -> blob)."""
    parts = path.split("/")
    above = ["/".join(parts[:depth]) for depth in range(1, len(parts))]
    if path in shape.links or any(name in shape.links for name in above):
        raise GitError(f"refusing to write {path!r}: it is, or lies under, a symbolic link")
    entry = shape.listing.get(path)
    if entry is not None and entry.kind != "file":
        raise GitError(f"refusing to write {path!r}: it is a {entry.kind} at {shape.head[:12]}, not a file")
    for name in above:
        if name in files or (name in shape.listing and shape.listing[name].kind != "dir"):
            raise GitError(f"refusing to write {path!r}: {name!r} is not a folder at {shape.head[:12]}")


class _Shape(NamedTuple):
    """What each path of a commit's tree is: its entries, executable files and symbolic links."""

    head: str
    listing: dict[str, Entry]
    executables: frozenset[str]
    links: frozenset[str]


class GitCheckout:
    """One cycle's working copy: a detached worktree at the policy branch's remote head.

    Made with `written=False` the worktree holds no files yet: `files` and `read` answer from git's objects
    (`ls-tree`, `cat-file --batch`), and the files are written (`reset --hard`) the first time `root` is
    asked for or a command that works on the working tree runs (`revert`). A commit or a marker needs no
    working tree: the index is filled from HEAD (`read-tree`), the committed files' blobs are written
    straight into git's objects and the index pointed at them; no file is written.
    """

    def __init__(self, workspace: GitWorkspace, repo: Repo, *, written: bool = True) -> None:
        self._ws = workspace
        self._repo = repo
        self._written = written
        # Without a written tree: whether the index holds HEAD's tree (so that a commit stages only its files).
        self._indexed = written
        # HEAD's tree as listed, by the HEAD it was listed at.
        self._listing: _Shape | None = None
        # What each path of HEAD's tree is (entries, executable files, symbolic links), by the HEAD it was listed
        # at, kept across this checkout's own commits (they change files' content, never what a path is): what
        # a commit without a tree checks.
        self._shape: _Shape | None = None

    @property
    def root(self) -> Path:
        self._write_tree()
        return self._top

    @property
    def _top(self) -> Path:
        return Path(str(self._repo.working_tree_dir))

    @property
    def written(self) -> bool:
        """Whether the working tree's files have been written out."""
        return self._written

    def _write_tree(self) -> None:
        if not self._written:
            self._git("reset", "--hard", "--quiet", "HEAD")
            self._written = self._indexed = True

    def _fill_index(self) -> None:
        """The index at HEAD's tree without writing a file: what a commit of a few files starts from."""
        if not self._indexed:
            self._git("read-tree", "HEAD")
            self._indexed = True

    def files(self, paths: Sequence[str]) -> list[TreeFile]:
        """The files at `paths`, from HEAD's tree; through the working tree when a symbolic link is on the way.

        What was chosen from the tree is remembered in the cache repository by commit (which names its
        tree): a cycle at the commit the last one scanned lists no tree (`ls-tree` of 10,000 files and the
        choice among them cost ~60 ms).
        """
        head = self.head
        remembered = _remembered_files(self._files_memo, head, paths)
        if remembered is not None:
            return remembered
        selected = select_files(self._tree(), paths)
        if selected is None:
            return walk_files(self.root, paths)
        with suppress(OSError):  # an unwritable cache only makes the next listing slower
            _remember_files(self._files_memo, head, paths, selected)
        return selected

    @property
    def _files_memo(self) -> Path:
        return self._ws.cache_path / FILES_MEMO

    def read(self, files: Sequence[str]) -> dict[str, bytes]:
        """The bytes of `files`: from the working tree once written, else from HEAD's blobs in one `cat-file`."""
        if self._written:
            return {file: (self._top / _relative(file)).read_bytes() for file in files}
        if not files:
            return {}  # nothing to read: no tree to list
        listing = self._tree()
        ids: dict[str, str] = {}
        for file in files:
            entry = listing.get(file)
            if entry is None or entry.kind != "file":
                raise GitError(f"cannot read {file!r}: not a file at {self.head[:12]}")
            ids[file] = entry.blob
        blobs = self._cat_blobs(sorted(set(ids.values())))
        return {file: blobs[blob] for file, blob in ids.items()}

    def _tree(self) -> dict[str, Entry]:
        """Every path of HEAD's tree (`ls-tree -r -t -l`), kept while HEAD stays."""
        head = self.head
        if self._listing is not None and self._listing.head == head:
            return self._listing.listing
        out = self._git("ls-tree", "-r", "-t", "-l", "-z", "--full-tree", "HEAD", strip_newline_in_stdout=False)
        listing: dict[str, Entry] = {}
        executables: set[str] = set()
        links: set[str] = set()
        for record in out.split("\0"):
            if not record:
                continue
            meta, _, path = record.partition("\t")
            mode, kind, blob, size = meta.split()
            if kind == "tree":
                listing[path] = Entry("dir")
            elif mode == "120000":
                listing[path] = Entry("link", blob)
                links.add(path)
            elif kind == "blob":
                listing[path] = Entry("file", blob, int(size))
                if mode == "100755":
                    executables.add(path)
            else:
                listing[path] = Entry("other", blob)
        self._listing = _Shape(head, listing, frozenset(executables), frozenset(links))
        return listing

    def _cat_blobs(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The content of the blobs `ids`, in one `git cat-file --batch`."""
        if not ids:
            return {}
        out = self._git_bytes(("cat-file", "--batch"), "".join(f"{blob}\n" for blob in ids).encode())
        blobs: dict[str, bytes] = {}
        at = 0
        for blob in ids:
            end = out.index(b"\n", at)
            header = out[at:end].decode("ascii", "replace").split()
            if len(header) != 3 or header[1] != "blob":
                raise GitError(f"git cat-file: {blob} is not a blob in this repository")
            size = int(header[2])
            blobs[blob] = out[end + 1 : end + 1 + size]
            at = end + 1 + size + 1
        return blobs

    @property
    def head(self) -> str:
        return str(self._repo.head.commit.hexsha)

    def _git_bytes(self, args: Sequence[str], stdin: bytes, extra: Mapping[str, str] | None = None) -> bytes:
        """git `args` fed `stdin` (with `extra` in its environment), its output as bytes: blobs are bytes, which
        GitPython's wrapper would decode. A failure is a one-line GitError with git's last line (credentials
        scrubbed) or the time limit."""
        command = [Git.GIT_PYTHON_GIT_EXECUTABLE or "git", *args]
        env = {**os.environ, **self._repo.git.environment(), **(extra or {})}
        try:
            done = subprocess.run(
                command, input=stdin, cwd=self._top, env=env, capture_output=True, timeout=self._ws.timeout, check=True
            )
        except subprocess.CalledProcessError as exc:
            detail = self._ws.scrub(exc.stderr.decode("utf-8", "replace")).strip().splitlines()
            raise GitError(
                f"git {args[0]} failed: {detail[-1] if detail else f'exit status {exc.returncode}'}"
            ) from None
        except subprocess.TimeoutExpired:
            raise GitError(f"git {args[0]} took longer than {self._ws.timeout:g} s") from None
        return done.stdout

    def _git(self, action: str, *args: str, **kwargs: object) -> str:
        try:
            return str(getattr(self._repo.git, action.replace("-", "_"))(*args, **kwargs))
        except GitCommandError as exc:
            raise self._ws.wrap(exc, action) from None

    def _identity(self, author: Author) -> dict[str, str]:
        return {
            "GIT_AUTHOR_NAME": author.name,
            "GIT_AUTHOR_EMAIL": author.email,
            "GIT_COMMITTER_NAME": self._ws.committer.name,
            "GIT_COMMITTER_EMAIL": self._ws.committer.email,
        }

    def log(self, max_count: int = 500) -> list[CommitInfo]:
        """Commits reachable from HEAD in the order they landed on the branch, newest first, with trailers
        parsed by git itself (`gitbot.history.landing_order`: the first-parent line, with what each merge
        brought in at its place and time; a fast-forwarded commit landed at its committer date).

        `--topo-order` lists a merge's branch right after the merge, so a log cut at `max_count` keeps what
        landed last; by date, a pull request merged today with commits made long ago could be cut off.
        """
        out = self._git("log", "-z", "--topo-order", f"--max-count={max_count}", f"--format={_LOG_FORMAT}", "HEAD")
        commits: list[CommitInfo] = []
        for record in out.split("\0"):
            record = record.lstrip("\n")
            if not record:
                continue
            sha, parents, name, email, date, rest = record.split(_FIELD, 5)
            message, _, trailers = rest.rpartition(_FIELD)
            first, _, body = message.strip("\n").partition("\n\n")
            # git's subject is the whole first paragraph, its lines joined by spaces.
            subject = " ".join(first.split("\n"))
            pairs = []
            for item in trailers.strip("\n").split(_TRAILER_SEP):
                key, sep, value = item.partition(_TRAILER_KV)
                if sep:
                    pairs.append((key.strip(), value.strip()))
            commits.append(
                CommitInfo(
                    sha=sha,
                    parents=tuple(parents.split()),
                    author=Author(name, email),
                    committed_at=datetime.fromisoformat(date),
                    subject=subject,
                    body=body.strip("\n"),
                    trailers=tuple(pairs),
                )
            )
        return landing_order(commits)

    def _commit_staged(self, message: str, author: Author, *, allow_empty: bool = False) -> str:
        if not message.strip():
            raise GitError("refusing to commit with an empty message")
        extra = ["--allow-empty"] if allow_empty else []
        # Through stdin, never as an argument: a message listing thousands of changes is longer than one
        # argument may be (E2BIG, "Argument list too long").
        with _input(message.encode("utf-8")) as stdin, self._repo.git.custom_environment(**self._identity(author)):
            self._git("commit", "--quiet", "--no-verify", "--cleanup=whitespace", *extra, "-F", "-", istream=stdin)
        return self.head

    def record(self, message: str, author: Author) -> str:
        """Commit nothing but `message` (a marker such as a canary pause), return the new sha."""
        self._fill_index()  # the commit takes its tree from the index
        return self._commit_staged(message, author, allow_empty=True)

    def _staged_changes(self) -> bool:
        try:
            self._repo.git.diff("--cached", "--quiet")
        except GitCommandError:
            return True
        return False

    def commit(self, files: Mapping[str, str], message: str, author: Author) -> str:
        """Write `files` (relative path -> text), commit them, return the new sha."""
        return self.commit_series([NewCommit(files, message, author)])[0]

    def commit_series(self, commits: Sequence[NewCommit]) -> list[str]:
        """Commit each of `commits` on top of the one before; their shas, in order.

        Without a written tree the whole series is one `git fast-import` and one move of HEAD, and it is
        refused whole (nothing committed) when one of them has no files, an empty message, a file it cannot
        write or no change. With a written tree each is staged and committed in turn.
        """
        for commit in commits:
            if not commit.files:
                raise GitError("refusing to commit: no files given")
            if not commit.message.strip():
                raise GitError("refusing to commit with an empty message")
        if self._written:
            return [self._commit_written(commit) for commit in commits]
        return self._import_commits(commits) if commits else []

    def _commit_written(self, commit: NewCommit) -> str:
        paths = self._stage(commit.files)
        if not self._staged_changes():
            raise GitError(f"nothing to commit: {_named(paths)} already hold this content")
        return self._commit_staged(commit.message, commit.author)

    def _import_commits(self, commits: Sequence[NewCommit]) -> list[str]:
        """`commit_series` without a working tree: the commits are made by `git fast-import` from HEAD's
        tree as listed (a file keeps its mode, a new one is regular), then HEAD moves to the last one."""
        shape = self._shape_at_head()
        head = shape.head
        # What each path holds as the series goes: a commit that changes none of its files is refused.
        blobs = {path: entry.blob for path, entry in shape.listing.items() if entry.kind == "file"}
        sizes: dict[str, int] = {}
        idents: dict[Author, tuple[bytes, bytes]] = {}
        stream = bytearray(b"feature done\n")
        for mark, commit in enumerate(commits, 1):
            paths = [_relative(path) for path in commit.files]
            if commit.author not in idents:
                idents[commit.author] = self._idents(commit.author)
            author, committer = idents[commit.author]
            message = _clean_message(commit.message).encode("utf-8")
            parent = head.encode() if mark == 1 else b":%d" % (mark - 1)
            stream += b"commit %s\nmark :%d\nauthor %s\ncommitter %s\n" % (_IMPORT_REF, mark, author, committer)
            stream += b"data %d\n%s\nfrom %s\n" % (len(message), message, parent)
            changed = False
            for path, text in zip(paths, commit.files.values(), strict=True):
                _check_writable(path, shape, blobs)
                data = text.encode("utf-8")
                blob = object_id(data, head)
                changed = changed or blobs.get(path) != blob
                blobs[path] = blob
                sizes[path] = len(data)
                mode = b"100755" if path in shape.executables else b"100644"
                stream += b"M %s inline %s\ndata %d\n%s\n" % (mode, _quoted_path(path), len(data), data)
            if not changed:
                raise GitError(f"nothing to commit: {_named(paths)} already hold this content")
        # The commits' ids come back on standard output (no marks file to leave behind if the run is killed).
        stream += b"".join(b"get-mark :%d\n" % mark for mark in range(1, len(commits) + 1))
        stream += b"done\n"
        out = self._git_bytes(("fast-import", "--quiet", "--force"), bytes(stream))
        shas = out.decode("ascii", "replace").split()
        if len(shas) != len(commits) or any(len(sha) != len(head) for sha in shas):
            raise GitError(f"git fast-import gave {len(shas)} commit ids for {len(commits)} commits")
        # HEAD moves only if it is still where the series started. The import's own reference is left to go
        # with the work directory: deleting a reference locks the repository's shared packed-refs file, which a
        # run killed at that moment would leave locked for every later run.
        self._git_bytes(
            ("update-ref", "--no-deref", "--stdin"), b"update HEAD %s %s\n" % (shas[-1].encode(), head.encode())
        )
        # The index still holds the tree before the series: the next commit of a marker reads HEAD's again.
        self._indexed = False
        # The series wrote regular files only (never through a link), each keeping its mode and a new one
        # regular: what each path is stays as in its parent, with the blobs the series wrote.
        listing = dict(shape.listing)
        listing.update((path, Entry("file", blob, sizes[path])) for path, blob in blobs.items() if path in sizes)
        self._shape = shape._replace(head=shas[-1], listing=listing)
        return shas

    def _idents(self, author: Author) -> tuple[bytes, bytes]:
        """The author and committer lines git would write now (`git var`: the process environment's
        GIT_*_DATE honoured, names cleaned as `git commit` cleans them)."""
        out = self._git_bytes(("var", "-l"), b"", self._identity(author))
        found = dict(
            line.split(b"=", 1)
            for line in out.splitlines()
            if line.startswith((b"GIT_AUTHOR_IDENT=", b"GIT_COMMITTER_IDENT="))
        )
        try:
            return found[b"GIT_AUTHOR_IDENT"], found[b"GIT_COMMITTER_IDENT"]
        except KeyError:
            raise GitError("git var gave no author or committer identity") from None

    def _shape_at_head(self) -> _Shape:
        """What each path of HEAD's tree is: listed once, and kept across this checkout's own commits."""
        if self._shape is None or self._shape.head != self.head:
            self._tree()
            assert self._listing is not None
            self._shape = self._listing
        return self._shape

    def _stage(self, files: Mapping[str, str]) -> list[str]:
        """Write `files` (relative path -> text) into the written working tree and add them; the paths written."""
        self._write_tree()
        paths = [_relative(path) for path in files]
        top = self._top.resolve()
        for path in paths:
            target = self._top / path
            if target.is_symlink() or not target.parent.resolve().is_relative_to(top):
                # The repository's content decides where links point; gitbot writes only inside it.
                raise GitError(f"refusing to write {path!r}: it is, or lies under, a symbolic link")
        for path, text in zip(paths, files.values(), strict=True):
            target = self._top / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        # The paths go through stdin (thousands of them overflow an argument list), each taken literally.
        listed = b"\0".join(os.fsencode(path) for path in paths)
        with _input(listed) as stdin, self._repo.git.custom_environment(GIT_LITERAL_PATHSPECS="1"):
            self._git("add", "--pathspec-from-file=-", "--pathspec-file-nul", istream=stdin)
        return paths

    def revert(
        self, shas: Sequence[str], message: str, author: Author, finish: RevertFinish | None = None
    ) -> str | None:
        """Revert `shas` (newest first) as one commit; None on conflict or no change, tree left clean.

        `finish` runs on the reverted, uncommitted tree: the files it returns go into the same commit, with
        its message; its None, or an error it or the writing raises, gives the revert up with the tree clean.
        """
        if not shas:
            raise GitError("refusing to revert: no commits given")
        self._write_tree()
        try:
            self._repo.git.revert("--no-commit", "--no-edit", *shas)
        except GitCommandError as exc:
            stderr = str(exc.stderr or "")
            if "conflict" in stderr.lower() or "could not revert" in stderr.lower():
                self._abort_revert()
                return None
            self._abort_revert()
            raise self._ws.wrap(exc, "revert") from None
        if finish is not None:
            try:
                finished = finish()
                if finished is not None and finished[0]:
                    self._stage(finished[0])
            except BaseException:
                self._abort_revert()
                raise
            if finished is None:
                self._abort_revert()
                return None
            message = finished[1]
        if not self._staged_changes():
            self._abort_revert()
            return None
        sha = self._commit_staged(message, author)
        # A multi-commit `--no-commit` revert leaves sequencer state behind once committed by hand.
        with suppress(GitCommandError):
            self._repo.git.revert("--quit")
        return sha

    def _abort_revert(self) -> None:
        with suppress(GitCommandError):
            self._repo.git.revert("--abort")
        self._git("reset", "--hard", "--quiet", "HEAD")
        self._git("clean", "-fdxq")

    def reset(self, sha: str) -> None:
        """Move the working copy back to `sha` (local only), dropping later local commits."""
        if not self._written:
            # The index follows; files a commit wrote stay on disk unread (reads come from git's objects) until
            # the tree is written, which writes every file again.
            self._git("reset", "--quiet", sha)
            self._indexed = True
            return
        self._git("reset", "--hard", "--quiet", sha)
        self._git("clean", "-fdxq")

    def _push(self, refspec: str, action: str, lease: str | None = None) -> list[PushInfo]:
        remote = self._repo.remote(REMOTE)
        # The remote's own lines (`remote: ...`, a hook's reason) are kept here and go into gitbot's error.
        progress = RemoteProgress()
        try:
            if lease is None:
                infos = remote.push(refspec, progress=progress, kill_after_timeout=self._ws.timeout)
            else:
                infos = remote.push(
                    refspec, progress=progress, kill_after_timeout=self._ws.timeout, force_with_lease=lease
                )
        except GitCommandError as exc:
            raise self._ws.wrap(exc, action) from None
        if not infos:
            if isinstance(infos.error, GitCommandError):
                raise self._ws.wrap(infos.error, action) from None
            raise GitError(f"git {action} to {_safe_url(self._ws.url)} reported nothing")
        for info in infos:
            summary = self._ws.scrub(str(info.summary).strip())
            if info.flags & PushInfo.REJECTED:
                raise PushRejectedError(
                    f"git {action} to {_safe_url(self._ws.url)} rejected: {info.remote_ref_string} moved ({summary})",
                    hint="fetch, re-plan from the new head and retry",
                )
            if info.flags & PushInfo.REMOTE_REJECTED and any(race in summary for race in _REF_RACES):
                # The server took the push but could not move the ref: another push moved it (or held its
                # lock) between negotiation and update. Like a non-fast-forward, the cure is a fresh plan.
                raise PushRejectedError(
                    f"git {action} to {_safe_url(self._ws.url)} rejected: {info.remote_ref_string} "
                    f"changed while pushing ({summary})",
                    hint="fetch, re-plan from the new head and retry",
                )
            if info.flags & (PushInfo.REMOTE_REJECTED | PushInfo.REMOTE_FAILURE | PushInfo.ERROR):
                target = f"{_safe_url(self._ws.url)} {info.remote_ref_string}"
                said = self._remote_said(progress.other_lines)
                raise GitError(f"git {action} to {target} failed: {summary}{said}")
        return list(infos)

    def _remote_said(self, lines: Sequence[str]) -> str:
        """The server's last message line (a hook's reason) as `; remote said: ...`, or nothing."""
        said = [
            text for line in lines if line.startswith("remote:") and (text := " ".join(line[len("remote:") :].split()))
        ]
        if not said:
            return ""
        text = self._ws.scrub(said[-1])
        return f"; remote said: {text[:200]}"

    def _push_retrying(self, refspec: str, action: str) -> None:
        # A forced push of the bot's own branch does not depend on what the branch held, so a ref that
        # changed while pushing is pushed again as it is; nothing needs planning again.
        for attempt in range(1, _FORCED_PUSH_ATTEMPTS + 1):
            try:
                self._push(refspec, action)
            except PushRejectedError:
                if attempt == _FORCED_PUSH_ATTEMPTS:
                    raise
                continue
            return

    def push(self) -> None:
        """Push HEAD to the policy's branch; never forced.

        PushRejectedError when the remote moved: before the push (non-fast-forward) or while it was received
        (`failed to update ref`). Any other refusal is a GitError with the server's reason. Also when the
        remote already has this very commit: another replica made the same commit (same files, parent,
        message and second) and pushed it first, so this one delivered nothing and must not say so.
        """
        infos = self._push(f"HEAD:refs/heads/{self._ws.branch}", "push")
        if any(info.flags & PushInfo.UP_TO_DATE for info in infos):
            raise PushRejectedError(
                f"git push to {_safe_url(self._ws.url)}: {self._ws.branch} already has this commit",
                hint="another replica delivered the same change; fetch and re-plan",
            )

    def _check_bot_branch(self, branch: str, verb: str) -> None:
        if not branch.startswith(BOT_BRANCH_PREFIX) or not is_valid_branch(branch):
            raise GitError(
                f"refusing to {verb} {branch!r}: only valid branches under {BOT_BRANCH_PREFIX} are the bot's"
            )
        if branch == self._ws.branch:
            raise GitError(f"refusing to {verb} {branch!r}: it is the policy's own branch")

    def push_branch(self, branch: str, sha: str, expected: str | None = None) -> None:
        """Force-push `sha` to the bot's own branch `branch` (must start with `gitbot/`).

        Pushed again (a few times) when the branch changed while the push was received; PushRejectedError after.
        With `expected` (the branch head the pull request had when it was read), the push is made only while
        the branch still points there (`--force-with-lease`), once: another replica that updated the pull
        request first, or anyone who pushed to its branch since, wins, and this push is a PushRejectedError.
        """
        self._check_bot_branch(branch, "force-push")
        try:
            commit = str(self._repo.git.rev_parse("--verify", "--quiet", f"{sha}^{{commit}}")).strip()
        except GitCommandError:
            raise GitError(f"cannot push {branch}: {sha!r} is not a commit in this checkout") from None
        # GitPython reports push results per local ref, not per bare sha; a per-worktree ref is never
        # shared with other worktrees of the cache.
        local = "refs/worktree/gitbot-push"
        self._git("update-ref", local, commit)
        if expected is None:
            self._push_retrying(f"+{local}:refs/heads/{branch}", "push")
            return
        self._push_leased(local, branch, commit, expected)

    def _push_leased(self, local: str, branch: str, commit: str, expected: str) -> None:
        infos = self._push(f"{local}:refs/heads/{branch}", "push", lease=f"refs/heads/{branch}:{expected}")
        if commit != expected and any(info.flags & PushInfo.UP_TO_DATE for info in infos):
            # The same commit is there already but not from this push (two replicas made it alike): git
            # reports it up to date before it looks at the lease.
            raise PushRejectedError(
                f"git push to {_safe_url(self._ws.url)}: {branch} already has this commit, pushed by another",
                hint="another replica delivered the same change",
            )

    def refresh(self) -> None:
        """Fetch the remote and move the working copy to the remote head of the branch."""
        self._git("fetch", REMOTE, "--prune", "--no-tags", kill_after_timeout=self._ws.timeout)
        self.reset(f"refs/remotes/{REMOTE}/{self._ws.branch}")

    def merges_cleanly(self, branch: str, sha: str = "") -> bool:
        """Whether the bot's `branch` merges into HEAD without a conflict (False when the branch is gone).

        Decided by git's own merge (`merge-tree --write-tree`, which touches neither refs nor the working
        copy), not by the forge's asynchronous mergeability. `sha` is the branch head the forge reports; a
        commit this repository already has (the bot pushed it) is used without asking the remote.
        """
        self._check_bot_branch(branch, "merge")
        commit = sha if sha and self._has_commit(sha) else self._fetch_branch(branch)
        if commit is None:
            return False
        try:
            self._repo.git.merge_tree("--write-tree", "--no-messages", "HEAD", commit)
        except GitCommandError as exc:
            if exc.status == 1:  # merged with conflicts
                return False
            raise self._ws.wrap(exc, "merge-tree") from None
        return True

    def _has_commit(self, sha: str) -> bool:
        return re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", sha) is not None and _has_ref(self._repo, f"{sha}^{{commit}}")

    def _fetch_branch(self, branch: str) -> str | None:
        """Fetch the remote's `branch` into this worktree's FETCH_HEAD; its commit, or None when it is gone."""
        try:
            self._repo.git.fetch(REMOTE, "--no-tags", f"refs/heads/{branch}", kill_after_timeout=self._ws.timeout)
        except GitCommandError as exc:
            if "couldn't find remote ref" in str(exc.stderr):
                return None
            raise self._ws.wrap(exc, "fetch") from None
        return self._git("rev-parse", "--verify", "FETCH_HEAD^{commit}").strip()


# The files a checkout chose at its paths, by commit, in the cache repository (git ignores the file).
FILES_MEMO = "gitbot-files.json"


def _remembered_files(memo: Path, head: str, paths: Sequence[str]) -> list[TreeFile] | None:
    """The files remembered for `paths` at commit `head`, or None (another commit or paths, or a damaged
    record: only slower, never wrong)."""
    try:
        data = json.loads(memo.read_bytes())
        if not (isinstance(data, dict) and data.get("head") == head and data.get("paths") == list(paths)):
            return None
        files = [TreeFile(path, blob, size) for path, blob, size in data["files"]]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if all(type(f.path) is str and type(f.blob) is str and f.blob and type(f.size) is int for f in files):
        return files
    return None


def _remember_files(memo: Path, head: str, paths: Sequence[str], files: Sequence[TreeFile]) -> None:
    """Replace the record atomically: another process sharing the cache reads the old one or the new one."""
    rows = [[file.path, file.blob, file.size] for file in files]
    payload = json.dumps({"head": head, "paths": list(paths), "files": rows}, separators=(",", ":"))
    replace_text(memo, payload)
