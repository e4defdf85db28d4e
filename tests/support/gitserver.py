"""A real git smart-HTTP server on 127.0.0.1 for tests: `git http-backend` run as CGI behind Basic auth.

Owns: the loopback HTTP server, the bare repositories under its temporary root, and test-side helpers that
act on those repositories directly (seed a repository, commit as another person, read log and files).
It must not be used by gitbot itself; only tests import it.

Usage::

    with GitServer(tmp_path) as server:
        url = server.create_repo("config", {"clusters/app.yaml": "image: a:1\\n"})
        server.commit_as_other("config", {"README.md": "hi\\n"}, "docs: hello")
"""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import pytest

DEFAULT_USER = "gitbot"
DEFAULT_TOKEN = "tok-7c1e9f2a-secret-value"
OTHER_NAME = "Other Person"
OTHER_EMAIL = "other@example.test"

# A clean environment for git commands run on the server side: no user or system configuration leaks in.
_GIT_ENV_BASE = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "LANG": "C",
}


# git runs `update` hooks from the bare repository with the ref name, old and new sha as arguments.
_RACE_HOOK = """#!/bin/sh
pending=gitserver-race
[ -f "$pending" ] || exit 0
read -r ref sha < "$pending"
[ "$1" = "$ref" ] || exit 0
rm -f "$pending"
git update-ref "$ref" "$sha"
"""


def _http_backend() -> str:
    exec_path = subprocess.run(["git", "--exec-path"], check=True, capture_output=True, text=True).stdout.strip()
    return str(Path(exec_path) / "git-http-backend")


# `hook(phase, method, path)`: phase "received" once the request body is read, before git runs; "handled"
# after git has run (a push has landed), before the answer is sent. False drops the request there: the
# connection is closed without an answer (and at "received" git never runs), as when a client dies mid-call.
RequestHook = Callable[[str, str, str], bool]


@dataclass(frozen=True)
class ServerCommit:
    """One commit of a server repository as `git log` reports it."""

    sha: str
    author_name: str
    author_email: str
    subject: str
    body: str


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (user, password) in self.server.credentials

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.server.chunked_requests += 1
            chunks = []
            while True:
                size_line = self.rfile.readline().strip().split(b";", 1)[0]
                size = int(size_line, 16)
                if size == 0:
                    # Trailer section ends with an empty line.
                    while self.rfile.readline().strip():
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        if not self._authorized():
            self.server.auth_failures += 1
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        user = base64.b64decode(self.headers["Authorization"][6:]).decode().partition(":")[0]
        parts = urlsplit(self.path)
        body = self._read_body()
        hook = self.server.hook
        if hook is not None and not hook("received", self.command, self.path):
            self.close_connection = True
            return
        env = dict(_GIT_ENV_BASE)
        env.update(
            {
                "GIT_PROJECT_ROOT": str(self.server.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": parts.path,
                "QUERY_STRING": parts.query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": user,
                "REMOTE_ADDR": self.client_address[0],
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            }
        )
        proc = subprocess.run([self.server.backend], input=body, env=env, capture_output=True, check=False)
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = proc.stdout.partition(b"\n\n")
        status = 200
        headers: list[tuple[str, str]] = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        if hook is not None and not hook("handled", self.command, self.path):
            self.close_connection = True
            return
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # True: a client that went away mid-answer (killed on purpose) is not reported as a server error.
    quiet_disconnects = False

    def handle_error(self, request: object, client_address: object) -> None:
        if self.quiet_disconnects and isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def __init__(self, root: Path, credentials: set[tuple[str, str]]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.credentials = credentials
        self.backend = _http_backend()
        self.requests: list[str] = []
        self.auth_failures = 0
        self.chunked_requests = 0
        self.hook: RequestHook | None = None


class GitServer:
    """Bare repositories under `root` served over smart HTTP with Basic auth on a free loopback port.

    `url_for(name)` is the clone URL (no credentials in it); `username`/`token` are the accepted
    credentials. Use as a context manager; `stop()` shuts the server down.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        username: str = DEFAULT_USER,
        token: str = DEFAULT_TOKEN,
        quiet_disconnects: bool = False,
    ) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="gitserver-")) if root is None else root
        self.root.mkdir(parents=True, exist_ok=True)
        self.username = username
        self.token = token
        self._server = _Server(self.root, {(username, token)})
        self._server.quiet_disconnects = quiet_disconnects
        self._names = 0
        self._names_lock = threading.Lock()
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[str]:
        """Every request line received, in order (method and path)."""
        return self._server.requests

    @property
    def auth_failures(self) -> int:
        """Requests refused for missing or wrong credentials so far."""
        return self._server.auth_failures

    @property
    def chunked_requests(self) -> int:
        """Requests whose body came with chunked transfer encoding so far."""
        return self._server.chunked_requests

    @property
    def request_hook(self) -> RequestHook | None:
        """Called for every authorised request, see `RequestHook`; None (the default) serves as usual."""
        return self._server.hook

    @request_hook.setter
    def request_hook(self, hook: RequestHook | None) -> None:
        self._server.hook = hook

    @contextmanager
    def refusing_credentials(self) -> Iterator[None]:
        """Refuse every credential while inside (as if the token were revoked), then accept it again."""
        accepted = set(self._server.credentials)
        self._server.credentials.clear()
        try:
            yield
        finally:
            self._server.credentials.update(accepted)

    def url_for(self, name: str) -> str:
        return f"{self.base_url}/{name}.git"

    def unique_name(self, prefix: str = "config") -> str:
        """A repository name not used on this server yet (for tests sharing a session server)."""
        with self._names_lock:
            self._names += 1
            return f"{prefix}-{self._names}"

    def repo_path(self, name: str) -> Path:
        return self.root / f"{name}.git"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> GitServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- server-side repository helpers ------------------------------------------------------------

    def git(self, name: str, *args: str, input_text: str | None = None, env: Mapping[str, str] = {}) -> str:
        """Run git in the bare repository `name` and return its stdout (raises on failure)."""
        full_env = dict(_GIT_ENV_BASE)
        full_env.update(env)
        proc = subprocess.run(
            ["git", "--git-dir", str(self.repo_path(name)), *args],
            input=input_text,
            env=full_env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed in {name}: {proc.stderr.strip()}")
        return proc.stdout

    def create_repo(self, name: str, files: Mapping[str, str], branch: str = "main") -> str:
        """Create bare repository `name` with `files` in one initial commit on `branch`; return its URL."""
        path = self.repo_path(name)
        if path.exists():
            raise ValueError(f"repository {name} already exists at {path}")
        subprocess.run(
            ["git", "init", "--quiet", "--bare", f"--initial-branch={branch}", str(path)],
            check=True,
            env=_GIT_ENV_BASE,
        )
        self.git(name, "config", "http.receivepack", "true")
        self.commit_as_other(
            name, files, "Initial configuration", branch=branch, author=("Seed Author", "seed@example.test")
        )
        return self.url_for(name)

    def commit_as_other(
        self,
        name: str,
        files: Mapping[str, str],
        message: str,
        *,
        branch: str = "main",
        author: tuple[str, str] = (OTHER_NAME, OTHER_EMAIL),
        delete: tuple[str, ...] = (),
        date: datetime | None = None,
    ) -> str:
        """Commit `files` (path -> text) on `branch` directly in the bare repository, as another person.

        Works like someone pushing from elsewhere; returns the new commit sha. Paths in `delete` are removed.
        `date` dates the commit (default: now).
        """
        ref = f"refs/heads/{branch}"
        parent = self._resolve(name, ref)
        sha = self._write_commit(name, parent, files, message, author=author, delete=delete, date=date)
        self.git(name, "update-ref", ref, sha, parent or "0" * 40)
        return sha

    def _write_commit(
        self,
        name: str,
        parent: str | None,
        files: Mapping[str, str],
        message: str,
        *,
        author: tuple[str, str],
        delete: tuple[str, ...] = (),
        date: datetime | None = None,
    ) -> str:
        """A commit of `files` on top of `parent` in the bare repository `name`; no ref is moved."""
        with tempfile.TemporaryDirectory(prefix="gitserver-index-") as tmp:
            env = {
                "GIT_INDEX_FILE": str(Path(tmp) / "index"),
                "GIT_AUTHOR_NAME": author[0],
                "GIT_AUTHOR_EMAIL": author[1],
                "GIT_COMMITTER_NAME": author[0],
                "GIT_COMMITTER_EMAIL": author[1],
            }
            if date is not None:
                env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"@{int(date.timestamp())} +0000"
            if parent:
                self.git(name, "read-tree", parent, env=env)
            for rel, text in files.items():
                blob = self.git(name, "hash-object", "-w", "--stdin", input_text=text, env=env).strip()
                self.git(name, "update-index", "--add", "--cacheinfo", f"100644,{blob},{rel}", env=env)
            for rel in delete:
                self.git(name, "update-index", "--force-remove", rel, env=env)
            tree = self.git(name, "write-tree", env=env).strip()
            parent_args = ["-p", parent] if parent else []
            return self.git(name, "commit-tree", tree, *parent_args, input_text=message, env=env).strip()

    # -- pushes the server refuses ---------------------------------------------------------------------

    def race_next_push(
        self,
        name: str,
        files: Mapping[str, str],
        message: str,
        *,
        branch: str = "main",
        author: tuple[str, str] = (OTHER_NAME, OTHER_EMAIL),
    ) -> str:
        """Make the next push to `branch` lose a race: another person's commit lands while it is received.

        git's `update` hook runs after the pushed objects are accepted and just before the ref is moved; this
        one moves the ref to a prepared commit (on top of the current head) once, so receive-pack finds the
        ref changed and answers `[remote rejected] (failed to update ref)`. Returns the racing commit's sha.
        """
        ref = f"refs/heads/{branch}"
        parent = self._resolve(name, ref)
        sha = self._write_commit(name, parent, files, message, author=author)
        path = self.repo_path(name)
        (path / "gitserver-race").write_text(f"{ref} {sha}\n")
        self._install_hook(name, "update", _RACE_HOOK)
        return sha

    def race_pending(self, name: str) -> bool:
        """True while the race set up by `race_next_push` has not happened yet."""
        return (self.repo_path(name) / "gitserver-race").exists()

    @contextmanager
    def holding_ref_lock(self, name: str, branch: str = "main") -> Iterator[None]:
        """Hold `refs/heads/<branch>.lock` in the bare repository while inside, as a stuck writer would."""
        lock = self.repo_path(name) / "refs" / "heads" / f"{branch}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text("")
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)

    @contextmanager
    def declining_pushes(self, name: str, reason: str) -> Iterator[None]:
        """A `pre-receive` hook that refuses every push with `reason` while inside."""
        hook = self._install_hook(name, "pre-receive", f"#!/bin/sh\necho {shlex.quote(reason)} >&2\nexit 1\n")
        try:
            yield
        finally:
            hook.unlink(missing_ok=True)

    def _install_hook(self, name: str, hook: str, script: str) -> Path:
        path = self.repo_path(name) / "hooks" / hook
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(script)
        path.chmod(0o755)
        return path

    def _resolve(self, name: str, ref: str) -> str | None:
        try:
            return self.git(name, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip() or None
        except RuntimeError:
            return None

    def head(self, name: str, branch: str = "main") -> str | None:
        """The sha `branch` points at in the bare repository, or None when it does not exist."""
        return self._resolve(name, f"refs/heads/{branch}")

    def branches(self, name: str) -> list[str]:
        out = self.git(name, "for-each-ref", "--format=%(refname:short)", "refs/heads/")
        return [line for line in out.splitlines() if line]

    def log(self, name: str, branch: str = "main", max_count: int = 100) -> list[ServerCommit]:
        """Commits on `branch`, newest first."""
        out = self.git(name, "log", f"--max-count={max_count}", "--format=%H%x1f%an%x1f%ae%x1f%s%x1f%b%x1e", branch)
        commits = []
        for record in out.split("\x1e"):
            record = record.strip("\n")
            if not record:
                continue
            sha, an, ae, subject, body = record.split("\x1f")
            commits.append(ServerCommit(sha, an, ae, subject, body.strip()))
        return commits

    def read_file(self, name: str, path: str, ref: str = "main") -> str:
        """The text of `path` at `ref` in the bare repository."""
        return self.git(name, "show", f"{ref}:{path}")

    def message(self, name: str, ref: str = "main") -> str:
        """The full commit message of `ref`."""
        return self.git(name, "log", "-1", "--format=%B", ref)


RepoFactory = Callable[..., tuple[str, str]]


@pytest.fixture(scope="session")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    """One git smart-HTTP server for the session; create a uniquely named repository per test."""
    with GitServer(tmp_path_factory.mktemp("gitserver")) as server:
        yield server


@pytest.fixture
def new_git_repo(git_server: GitServer) -> RepoFactory:
    """`new_git_repo(files, branch="main", prefix="config") -> (name, url)`: a fresh repository per call."""

    def make(files: Mapping[str, str], branch: str = "main", prefix: str = "config") -> tuple[str, str]:
        name = git_server.unique_name(prefix)
        return name, git_server.create_repo(name, files, branch)

    return make
