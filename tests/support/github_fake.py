"""A stateful fake of the GitHub REST endpoints gitbot uses, served on 127.0.0.1 for PyGithub to talk to.

Owns: in-memory state of one repository (git refs, pull requests with numbers, head/base, state, merged flag,
labels, issue comments), the JSON it answers with (shaped after GitHub's OpenAPI description so that
`tests/support/openapi.py` can check it), a record of every request and response, and test-side helpers
(merge or close a pull request as a person, read comments, inject a failure). Only tests import it.

Endpoints (under `/api/v3`): `GET /repos/{o}/{r}`; `GET /repos/{o}/{r}/git/ref/{ref}`,
`POST .../git/refs`, `PATCH|DELETE .../git/refs/{ref}`; `GET|POST .../pulls` (list filters `state`, `head`
as `owner:branch`, `base`, pagination with `per_page`/`page` and a `Link` header), `GET|PATCH
.../pulls/{n}`; `GET|POST .../issues/{n}/comments`; `POST .../issues/{n}/labels`.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.support.openapi import Exchange, load_description

DEFAULT_TOKEN = "ghp_fake0123456789abcdefTOKEN"
DOCS = "https://docs.github.com/rest"

Json = Any
Handler = Callable[["GitHubFake", "_Request"], tuple[int, Json, dict[str, str]]]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha_for(name: str) -> str:
    return hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()


@dataclass
class FakePull:
    """The fake's state of one pull request."""

    number: int
    head: str
    base: str
    title: str
    body: str | None
    user: str
    state: str = "open"
    merged: bool = False
    labels: list[str] = field(default_factory=list)
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    closed_at: str | None = None
    merged_at: str | None = None
    merge_commit_sha: str | None = None


@dataclass
class FakeComment:
    id: int
    issue: int
    body: str
    user: str
    created_at: str = field(default_factory=_now)


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: dict[str, str]
    body: Json
    match: re.Match[str]


class _HTTPHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one segment; otherwise delayed ACKs add ~40 ms per keep-alive request.
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self.server.fake.handle(self)

    do_POST = do_GET
    do_PATCH = do_GET
    do_DELETE = do_GET
    do_PUT = do_GET


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # True: a client that went away mid-answer (killed on purpose) is not reported as a server error.
    quiet_disconnects = False

    def handle_error(self, request: object, client_address: object) -> None:
        if self.quiet_disconnects and isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def __init__(self, fake: GitHubFake) -> None:
        super().__init__(("127.0.0.1", 0), _HTTPHandler)
        self.fake = fake


class GitHubFake:
    """One repository `owner/name` on a loopback GitHub REST fake; `base_url` is PyGithub's `base_url`."""

    def __init__(
        self,
        owner: str = "acme",
        name: str = "cluster-config",
        *,
        token: str = DEFAULT_TOKEN,
        login: str = "gitbot-app",
        default_branch: str = "main",
        quiet_disconnects: bool = False,
    ) -> None:
        self.owner = owner
        self.name = name
        self.token = token
        self.login = login
        self.default_branch = default_branch
        self.refs: dict[str, str] = {f"refs/heads/{default_branch}": _sha_for(default_branch)}
        self.pulls: dict[int, FakePull] = {}
        self.comments: list[FakeComment] = []
        self.labels: dict[str, int] = {}
        self.exchanges: list[Exchange] = []
        self._failures: list[tuple[str, re.Pattern[str], int, Json]] = []
        self._resolve_branch: Callable[[str], str | None] | None = None
        # `hook(phase, method, path)` as for the git server (tests.support.gitserver.RequestHook): "received"
        # before the request changes any state, "handled" after; False drops the request without an answer.
        self.hook: Callable[[str, str, str], bool] | None = None
        self._next_number = 1
        self._next_id = 1000
        self._lock = threading.RLock()
        self._server = _Server(self)
        self._server.quiet_disconnects = quiet_disconnects
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/api/v3"

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> GitHubFake:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- test-side helpers -------------------------------------------------------------------------

    def open_pull(
        self,
        head: str,
        base: str = "main",
        title: str = "opened by a person",
        body: str = "",
        user: str = "person",
    ) -> FakePull:
        """Open a pull request directly in the fake's state, as someone else would (no request recorded)."""
        with self._lock:
            pull = FakePull(self._next_number, head, base, title, body, user)
            self.pulls[pull.number] = pull
            self._next_number += 1
            return pull

    def merge(self, number: int, sha: str | None = None) -> FakePull:
        """Merge pull request `number` as a person would on the website."""
        with self._lock:
            pull = self.pulls[number]
            if pull.state != "open":
                raise ValueError(f"pull request #{number} is {pull.state}, cannot merge")
            pull.state, pull.merged = "closed", True
            pull.closed_at = pull.merged_at = pull.updated_at = _now()
            pull.merge_commit_sha = sha or _sha_for(f"merge-{number}")
            return pull

    def close(self, number: int) -> FakePull:
        """Close pull request `number` without merging, as a person would."""
        with self._lock:
            pull = self.pulls[number]
            pull.state, pull.closed_at, pull.updated_at = "closed", _now(), _now()
            return pull

    def list_pulls(self, state: str = "all") -> list[FakePull]:
        with self._lock:
            return [p for p in self.pulls.values() if state == "all" or p.state == state]

    def comments_on(self, number: int) -> list[str]:
        """Bodies of the comments on issue/pull request `number`, oldest first."""
        with self._lock:
            return [c.body for c in self.comments if c.issue == number]

    def requests(self, method: str | None = None, path_contains: str = "") -> list[Exchange]:
        """Recorded exchanges, filtered by method and a substring of the path."""
        with self._lock:
            return [e for e in self.exchanges if (method is None or e.method == method) and path_contains in e.path]

    def fail_next(self, method: str, path_regex: str, status: int = 502, body: Json = None) -> None:
        """Answer the next `method` request whose API path matches `path_regex` with `status`."""
        payload = body if body is not None else {"message": "Server Error", "documentation_url": DOCS}
        with self._lock:
            self._failures.append((method.upper(), re.compile(path_regex), status, payload))

    # -- JSON shapes -------------------------------------------------------------------------------

    def _api(self, suffix: str = "") -> str:
        return f"{self.base_url}/repos/{self.full_name}{suffix}"

    def user_json(self, login: str) -> Json:
        api = f"{self.base_url}/users/{login}"
        return {
            "login": login,
            "id": 1 + int(_sha_for(login)[:6], 16),
            "node_id": f"U_{login}",
            "avatar_url": f"{self.root_url}/avatars/{login}",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{self.root_url}/{login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": "User",
            "site_admin": False,
        }

    def repo_json(self, *, full: bool = False) -> Json:
        api = self._api()
        templated = {
            "archive_url": "/{archive_format}{/ref}",
            "assignees_url": "/assignees{/user}",
            "blobs_url": "/git/blobs{/sha}",
            "branches_url": "/branches{/branch}",
            "collaborators_url": "/collaborators{/collaborator}",
            "comments_url": "/comments{/number}",
            "commits_url": "/commits{/sha}",
            "compare_url": "/compare/{base}...{head}",
            "contents_url": "/contents/{+path}",
            "git_commits_url": "/git/commits{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "issue_comment_url": "/issues/comments{/number}",
            "issue_events_url": "/issues/events{/number}",
            "issues_url": "/issues{/number}",
            "keys_url": "/keys{/key_id}",
            "labels_url": "/labels{/name}",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "pulls_url": "/pulls{/number}",
            "releases_url": "/releases{/id}",
            "statuses_url": "/statuses/{sha}",
            "trees_url": "/git/trees{/sha}",
            "contributors_url": "/contributors",
            "deployments_url": "/deployments",
            "downloads_url": "/downloads",
            "events_url": "/events",
            "forks_url": "/forks",
            "hooks_url": "/hooks",
            "languages_url": "/languages",
            "merges_url": "/merges",
            "stargazers_url": "/stargazers",
            "subscribers_url": "/subscribers",
            "subscription_url": "/subscription",
            "tags_url": "/tags",
            "teams_url": "/teams",
        }
        host = f"127.0.0.1:{self.port}"
        data: dict[str, Json] = {name: api + suffix for name, suffix in templated.items()}
        data.update(
            {
                "id": 4242,
                "node_id": "R_fake",
                "name": self.name,
                "full_name": self.full_name,
                "owner": self.user_json(self.owner),
                "private": True,
                "html_url": f"{self.root_url}/{self.full_name}",
                "description": None,
                "fork": False,
                "url": api,
                "clone_url": f"{self.root_url}/{self.full_name}.git",
                "git_url": f"git://{host}/{self.full_name}.git",
                "ssh_url": f"git@{host}:{self.full_name}.git",
                "svn_url": f"{self.root_url}/{self.full_name}",
                "mirror_url": None,
                "homepage": None,
                "language": None,
                "default_branch": self.default_branch,
                "forks": 0,
                "forks_count": 0,
                "stargazers_count": 0,
                "watchers": 0,
                "watchers_count": 0,
                "open_issues": 0,
                "open_issues_count": 0,
                "size": 1,
                "has_issues": True,
                "has_projects": False,
                "has_wiki": False,
                "has_pages": False,
                "has_downloads": False,
                "archived": False,
                "disabled": False,
                "license": None,
                "pushed_at": "2026-01-01T00:00:00Z",
                "created_at": "2025-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:00:00Z",
            }
        )
        if full:
            data.update(
                {
                    "has_discussions": False,
                    "network_count": 0,
                    "subscribers_count": 0,
                    "open_issues_count": sum(p.state == "open" for p in self.pulls.values()),
                }
            )
        return data

    def _label_json(self, name: str) -> Json:
        if name not in self.labels:
            self.labels[name] = self._new_id()
        return {
            "id": self.labels[name],
            "node_id": f"LA_{self.labels[name]}",
            "url": self._api(f"/labels/{name}"),
            "name": name,
            # Nullable for labels, but a plain string inside pull-request-simple: "" suits both.
            "description": "",
            "color": "ededed",
            "default": False,
        }

    def _head_sha(self, branch: str) -> str:
        return self._followed_sha(branch) or self.refs.get(f"refs/heads/{branch}", _sha_for(branch))

    def follow_refs(self, resolve: Callable[[str], str | None]) -> None:
        """Report branch heads as `resolve(branch)` gives them (a real git server's refs), as GitHub does."""
        with self._lock:
            self._resolve_branch = resolve

    def _followed_sha(self, branch: str) -> str | None:
        return self._resolve_branch(branch) if self._resolve_branch is not None else None

    def _branch_json(self, branch: str, user: str, repo: Json) -> Json:
        return {
            "label": f"{self.owner}:{branch}",
            "ref": branch,
            "sha": self._head_sha(branch),
            "user": self.user_json(user),
            "repo": repo,
        }

    def pull_json(self, pull: FakePull, *, full: bool = True) -> Json:
        api = self._api(f"/pulls/{pull.number}")
        issue = self._api(f"/issues/{pull.number}")
        html = f"{self.root_url}/{self.full_name}/pull/{pull.number}"
        repo = self.repo_json()
        data: dict[str, Json] = {
            "url": api,
            "id": 50000 + pull.number,
            "node_id": f"PR_{pull.number}",
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": issue,
            "commits_url": f"{api}/commits",
            "review_comments_url": f"{api}/comments",
            "review_comment_url": self._api("/pulls/comments{/number}"),
            "comments_url": f"{issue}/comments",
            "statuses_url": self._api(f"/statuses/{self._head_sha(pull.head)}"),
            "number": pull.number,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "user": self.user_json(pull.user),
            "body": pull.body,
            "labels": [self._label_json(name) for name in pull.labels],
            "milestone": None,
            "assignee": None,
            "created_at": pull.created_at,
            "updated_at": pull.updated_at,
            "closed_at": pull.closed_at,
            "merged_at": pull.merged_at,
            "merge_commit_sha": pull.merge_commit_sha,
            "head": self._branch_json(pull.head, pull.user, repo),
            "base": self._branch_json(pull.base, self.owner, repo),
            "_links": {
                "self": {"href": api},
                "html": {"href": html},
                "issue": {"href": issue},
                "comments": {"href": f"{issue}/comments"},
                "review_comments": {"href": f"{api}/comments"},
                "review_comment": {"href": self._api("/pulls/comments{/number}")},
                "commits": {"href": f"{api}/commits"},
                "statuses": {"href": self._api(f"/statuses/{self._head_sha(pull.head)}")},
            },
            "author_association": "NONE",
            "auto_merge": None,
        }
        if full:
            data.update(
                {
                    "merged": pull.merged,
                    "mergeable": None if pull.state == "closed" else True,
                    "mergeable_state": "clean" if pull.state == "open" else "unknown",
                    "merged_by": self.user_json(self.owner) if pull.merged else None,
                    "comments": sum(c.issue == pull.number for c in self.comments),
                    "review_comments": 0,
                    "maintainer_can_modify": False,
                    "commits": 1,
                    "additions": 1,
                    "deletions": 1,
                    "changed_files": 1,
                }
            )
        return data

    def _comment_json(self, comment: FakeComment) -> Json:
        issue = self._api(f"/issues/{comment.issue}")
        return {
            "id": comment.id,
            "node_id": f"IC_{comment.id}",
            "url": self._api(f"/issues/comments/{comment.id}"),
            "html_url": f"{self.root_url}/{self.full_name}/pull/{comment.issue}#issuecomment-{comment.id}",
            "issue_url": issue,
            "body": comment.body,
            "user": self.user_json(comment.user),
            "created_at": comment.created_at,
            "updated_at": comment.created_at,
            "author_association": "NONE",
        }

    def _ref_json(self, ref: str) -> Json:
        return {
            "ref": ref,
            "node_id": f"REF_{_sha_for(ref)[:8]}",
            "url": self._api(f"/git/{ref}"),
            "object": {
                "type": "commit",
                "sha": self.refs[ref],
                "url": self._api(f"/git/commits/{self.refs[ref]}"),
            },
        }

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- request handling --------------------------------------------------------------------------

    def handle(self, http: _HTTPHandler) -> None:
        parts = urlsplit(http.path)
        length = int(http.headers.get("Content-Length") or 0)
        raw = http.rfile.read(length) if length else b""
        query = tuple(parse_qsl(parts.query, keep_blank_values=True))
        status: int
        payload: Json
        headers: dict[str, str] = {}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
            status, payload = 400, {"message": "Problems parsing JSON", "documentation_url": DOCS}
        else:
            hook = self.hook
            if hook is not None and not hook("received", http.command, http.path):
                http.close_connection = True
                return
            status, payload, headers = self._dispatch(http, parts.path, dict(query), body)
            if hook is not None and not hook("handled", http.command, http.path):
                http.close_connection = True
                return
        with self._lock:
            self.exchanges.append(
                Exchange(
                    method=http.command,
                    path=parts.path,
                    query=query,
                    request_body=body,
                    status=status,
                    response_body=payload,
                    request_headers=tuple((k, v) for k, v in http.headers.items() if k.lower() != "authorization"),
                )
            )
        data = b"" if payload is None else json.dumps(payload).encode()
        http.send_response(status)
        if data:
            http.send_header("Content-Type", "application/json; charset=utf-8")
        for key, value in headers.items():
            http.send_header(key, value)
        http.send_header("Content-Length", str(len(data)))
        http.end_headers()
        if data:
            http.wfile.write(data)

    def _dispatch(
        self, http: _HTTPHandler, path: str, query: dict[str, str], body: Json
    ) -> tuple[int, Json, dict[str, str]]:
        auth = http.headers.get("Authorization", "")
        scheme, _, credential = auth.partition(" ")
        if scheme.lower() not in ("token", "bearer") or credential != self.token:
            return 401, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}, {}
        api_path = path.removeprefix("/api/v3")
        with self._lock:
            for index, (method, pattern, status, payload) in enumerate(self._failures):
                if method == http.command and pattern.search(api_path):
                    del self._failures[index]
                    return status, payload, {}
            prefix = f"/repos/{re.escape(self.owner)}/{re.escape(self.name)}"
            for method, regex, handler in _ROUTES:
                if method != http.command:
                    continue
                match = re.fullmatch(prefix + regex, api_path)
                if match:
                    return handler(self, _Request(http.command, api_path, query, body, match))
        return 404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}, {}

    # -- endpoints ---------------------------------------------------------------------------------

    def _get_repo(self, req: _Request) -> tuple[int, Json, dict[str, str]]:
        return 200, self.repo_json(full=True), {}

    def _get_ref(self, req: _Request) -> tuple[int, Json, dict[str, str]]:
        ref = f"refs/{req.match['ref']}"
        if ref not in self.refs:
            return _not_found()
        return 200, self._ref_json(ref), {}

    def _create_ref(self, req: _Request) -> tuple[int, Json, dict[str, str]]:
        body = req.body if isinstance(req.body, dict) else {}
        ref, sha = body.get("ref"), body.get("sha")
        if not isinstance(ref, str) or not isinstance(sha, str) or not ref.startswith("refs/"):
            return _invalid("ref and sha are required; ref must start with refs/")
        if ref in self.refs:
            return _invalid("Reference already exists")
        self.refs[ref] = sha
        return 201, self._ref_json(ref), {"Location": self._api(f"/git/{ref}")}

    def _update_ref(self, req: _Request) -> tuple[int, Json, dict[str, str]]:
        ref = f"refs/{req.match['ref']}"
        body = req.body if isinstance(req.body, dict) else {}
        if ref not in self.refs:
            return _invalid("Reference does not exist")
        if not isinstance(body.get("sha"), str):
            return _invalid("sha is required")
        self.refs[ref] = body["sha"]
        return 200, self._ref_json(ref), {}

    def _delete_ref(self, req: _Request) -> tuple[int, Json, dict[str, str]]:
        ref = f"refs/{req.match['ref']}"
        if ref not in self.refs:
            return _invalid("Reference does not exist")
        del self.refs[ref]
        return 204, None, {}

    def _list_pulls(self, req: _Request) -> tuple[int, Json, dict[str, str]]:
        state = req.query.get("state", "open")
        if state not in ("open", "closed", "all"):
            return _invalid(f"state must be open, closed or all, not {state}")
        head = req.query.get("head")
        base = req.query.get("base")
        pulls = [p for p in self.pulls.values() if state == "all" or p.state == state]
        if head is not None:
            owner, _, branch = head.partition(":")
            # GitHub filters by `user:ref-name`; with no user part it matches nothing useful.
            pulls = [p for p in pulls if owner == self.owner and p.head == branch]
        if base is not None:
            pulls = [p for p in pulls if p.base == base]
        if req.query.get("direction", "desc") == "desc":
            pulls.reverse()
        try:
            per_page = max(1, min(100, int(req.query.get("per_page", "30"))))
            page = max(1, int(req.query.get("page", "1")))
        except ValueError:
            return _invalid("per_page and page must be integers")
        chunk = pulls[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(pulls):
            params = "&".join(f"{k}={v}" for k, v in req.query.items() if k != "page")
            sep = "&" if params else ""
            headers["Link"] = f'<{self.root_url}/api/v3{req.path}?{params}{sep}page={page + 1}>; rel="next"'
        return 200, [self.pull_json(p, full=False) for p in chunk], headers

    def _create_pull(self, req: _Request) -> tuple[int, Json, dict[str, str]]:
        body = req.body if isinstance(req.body, dict) else {}
        head, base, title = body.get("head"), body.get("base"), body.get("title")
        if not all(isinstance(v, str) and v for v in (head, base, title)):
            return _invalid("head, base and title are required")
        assert isinstance(head, str) and isinstance(base, str) and isinstance(title, str)
        branch = head.split(":", 1)[-1]
        if branch == base:
            return _invalid(f"No commits between {base} and {branch}")
        for pull in self.pulls.values():
            if pull.state == "open" and pull.head == branch and pull.base == base:
                # GitHub's answer to a second pull request from one head, as two replicas racing both get it.
                error = {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": f"A pull request already exists for {self.owner}:{branch}.",
                }
                return 422, {"message": "Validation Failed", "errors": [error], "documentation_url": DOCS}, {}
        number = self._next_number
        self._next_number += 1
        pull = FakePull(number, branch, base, title, body.get("body"), self.login)
        self.pulls[number] = pull
        return 201, self.pull_json(pull), {"Location": self._api(f"/pulls/{number}")}

    def _pull(self, req: _Request) -> FakePull | None:
        return self.pulls.get(int(req.match["number"]))

    def _get_pull(self, req: _Request) -> tuple[int, Json, dict[str, str]]:
        pull = self._pull(req)
        return (200, self.pull_json(pull), {}) if pull else _not_found()

    def _update_pull(self, req: _Request) -> tuple[int, Json, dict[str, str]]:
        pull = self._pull(req)
        if pull is None:
            return _not_found()
        body = req.body if isinstance(req.body, dict) else {}
        if "state" in body:
            if body["state"] not in ("open", "closed"):
                return _invalid("state must be open or closed")
            if pull.merged and body["state"] == "open":
                return _invalid("Cannot reopen a merged pull request")
            pull.state = body["state"]
            pull.closed_at = _now() if pull.state == "closed" else None
        if isinstance(body.get("title"), str):
            pull.title = body["title"]
        if "body" in body:
            pull.body = body["body"]
        if isinstance(body.get("base"), str):
            pull.base = body["base"]
        pull.updated_at = _now()
        return 200, self.pull_json(pull), {}

    def _list_comments(self, req: _Request) -> tuple[int, Json, dict[str, str]]:
        number = int(req.match["number"])
        if number not in self.pulls:
            return _not_found()
        return 200, [self._comment_json(c) for c in self.comments if c.issue == number], {}

    def _create_comment(self, req: _Request) -> tuple[int, Json, dict[str, str]]:
        number = int(req.match["number"])
        if number not in self.pulls:
            return _not_found()
        body = req.body if isinstance(req.body, dict) else {}
        if not isinstance(body.get("body"), str) or not body["body"]:
            return _invalid("body is required")
        comment = FakeComment(self._new_id(), number, body["body"], self.login)
        self.comments.append(comment)
        return 201, self._comment_json(comment), {"Location": self._comment_json(comment)["url"]}

    def _add_labels(self, req: _Request) -> tuple[int, Json, dict[str, str]]:
        pull = self._pull(req)
        if pull is None:
            return _not_found()
        body = req.body
        names = body.get("labels") if isinstance(body, dict) else body
        if not isinstance(names, list) or not names:
            return _invalid("labels must be a non-empty array")
        for item in names:
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str) or not name:
                return _invalid("each label must be a non-empty string")
            if name not in pull.labels:
                pull.labels.append(name)
        return 200, [self._label_json(name) for name in pull.labels], {}


def _not_found() -> tuple[int, Json, dict[str, str]]:
    return 404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}, {}


def _invalid(message: str) -> tuple[int, Json, dict[str, str]]:
    return (
        422,
        {
            "message": "Validation Failed",
            "errors": [{"resource": "Resource", "code": "custom", "message": message}],
            "documentation_url": DOCS,
        },
        {},
    )


_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "", GitHubFake._get_repo),
    ("GET", r"/git/ref/(?P<ref>.+)", GitHubFake._get_ref),
    ("POST", r"/git/refs", GitHubFake._create_ref),
    ("PATCH", r"/git/refs/(?P<ref>.+)", GitHubFake._update_ref),
    ("DELETE", r"/git/refs/(?P<ref>.+)", GitHubFake._delete_ref),
    ("GET", r"/pulls", GitHubFake._list_pulls),
    ("POST", r"/pulls", GitHubFake._create_pull),
    ("GET", r"/pulls/(?P<number>[0-9]+)", GitHubFake._get_pull),
    ("PATCH", r"/pulls/(?P<number>[0-9]+)", GitHubFake._update_pull),
    ("GET", r"/issues/(?P<number>[0-9]+)/comments", GitHubFake._list_comments),
    ("POST", r"/issues/(?P<number>[0-9]+)/comments", GitHubFake._create_comment),
    ("POST", r"/issues/(?P<number>[0-9]+)/labels", GitHubFake._add_labels),
]


@pytest.fixture
def github_fake() -> Iterator[GitHubFake]:
    """A fresh fake (empty state) per test; afterwards every exchange must match GitHub's description."""
    description = load_description()
    with GitHubFake() as fake:
        yield fake
        problems = description.validate_all(fake.exchanges)
    assert problems == [], "exchanges that GitHub's OpenAPI description rejects:\n" + "\n".join(problems)
