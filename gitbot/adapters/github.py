"""The forge adapter (PyGithub): find, open, update and close gitbot's pull requests on one repository.

Owns: the PyGithub client and its configuration (no retry of POST/PATCH, throttling on or off, timeout),
conversion of PyGithub pull requests to `gitbot.ports.ChangeRequest`, and the mapping of every failure to
`ForgeError`/`AuthError` with a one-line message that never contains the token. It must not decide what a
pull request says (the planner and messages do) and must not touch git.

Creating is made safe against duplicates: a POST is never retried (a timed-out create may have succeeded),
and when `create_change_request` is refused (GitHub answers 422 "A pull request already exists") or times out, it
looks for the open pull request from the same head branch and updates that instead. Each operation costs
as few API calls as it can: the repository is never fetched on its own, and a create is not preceded by
a lookup that the caller's listing of open pull requests already made.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar

import requests
from github import Auth, Github, GithubException
from github.PullRequest import PullRequest as GithubPull
from github.Repository import Repository
from github.Requester import HTTPRequestsConnectionClass, HTTPSRequestsConnectionClass, Requester
from urllib3.util.retry import Retry

from gitbot.adapters.deadline import DeadlineAdapter, DeadlineExceeded
from gitbot.errors import AuthError, ConfigError, ForgeError
from gitbot.ports import ChangeRequest

T = TypeVar("T")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
# Only reads are retried: a POST or PATCH that timed out may already have taken effect.
_RETRIED_METHODS = frozenset({"GET", "HEAD"})
# Seconds one API request may take in all (retries and a dripping answer included); `timeout` bounds each read.
REQUEST_DEADLINE = 60.0
# PyGithub takes its connection classes from class attributes when a client is made: set for one construction.
_CONSTRUCTING = threading.Lock()


class GitHubForge:
    """Pull requests on `repository` (`owner/name`) through the REST API at `base_url`.

    `base_url` is `https://api.github.com` or a GitHub Enterprise `https://HOST/api/v3`. `throttle` keeps
    PyGithub's pauses between requests (0.25 s) and writes (1 s), which GitHub asks integrations to keep;
    tests turn it off. `retries` bounds retries of reads and of connection failures; `per_page` is the
    page size of listings. `timeout` bounds each read of an answer, `deadline` each request as a whole.
    """

    def __init__(
        self,
        repository: str,
        token: str,
        *,
        base_url: str = "https://api.github.com",
        timeout: float = 15,
        deadline: float = REQUEST_DEADLINE,
        throttle: bool = True,
        retries: int = 2,
        backoff: float = 0.5,
        per_page: int = 100,
    ) -> None:
        if not _REPOSITORY.match(repository):
            raise ConfigError(f"GitHub repository {repository!r} must look like owner/name")
        if not token:
            raise ConfigError(f"no GitHub token given for {repository}", hint="set the policy's tokenEnv")
        self.repository = repository
        self.owner = repository.split("/", 1)[0]
        self.base_url = base_url.rstrip("/")
        self._token = token
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            allowed_methods=_RETRIED_METHODS,
            status_forcelist=(500, 502, 503, 504),
            backoff_factor=backoff,
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        pauses: dict[str, float | None] = (
            {} if throttle else {"seconds_between_requests": None, "seconds_between_writes": None}
        )
        if deadline <= 0:
            raise ConfigError("the GitHub request deadline must be more than 0 seconds")
        self.deadline = deadline
        http, https = _deadline_connections(deadline)
        with _CONSTRUCTING:
            Requester.injectConnectionClasses(http, https)
            try:
                self._github = Github(
                    auth=Auth.Token(token),
                    base_url=self.base_url,
                    timeout=max(1, math.ceil(timeout)),
                    retry=retry,
                    per_page=per_page,
                    # The repository is not fetched on its own: the calls made on it name it in their paths
                    # (a missing repository is reported by the first real call, as a 404). `withLazy` later
                    # would build a client without the deadline's connections.
                    lazy=True,
                    **pauses,  # type: ignore[arg-type]
                )
            finally:
                Requester.resetConnectionClasses()
        self._repo: Repository | None = None

    def close(self) -> None:
        """Release the HTTP connections."""
        self._github.close()

    # -- errors ------------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***")

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        where = f"{self.repository} at {self.base_url}"
        try:
            yield
        except GithubException as exc:
            detail = exc.data.get("message") if isinstance(exc.data, dict) else None
            errors = exc.data.get("errors") if isinstance(exc.data, dict) else None
            if isinstance(errors, list):
                extra = "; ".join(str(e.get("message") or e.get("code")) for e in errors if isinstance(e, dict))
                detail = f"{detail}: {extra}" if extra else detail
            text = self._scrub(f"GitHub {action} on {where}: HTTP {exc.status} {detail or 'error'}")
            if exc.status == 401 or (exc.status == 403 and "rate limit" not in str(detail).lower()):
                raise AuthError(text, hint="check the token and its access to the repository") from None
            # A missing repository or a request GitHub finds invalid is answered the same way next time.
            raise ForgeError(text, retryable=exc.status not in (404, 410, 422)) from None
        except DeadlineExceeded as exc:
            raise ForgeError(
                self._scrub(f"GitHub {action} on {where}: no complete answer within {exc.seconds:g} s; cut off"),
                hint="retry later; nothing after the cut request was done",
            ) from None
        except requests.RequestException as exc:
            raise ForgeError(
                self._scrub(f"GitHub {action} on {where}: cannot reach the API ({type(exc).__name__})")
            ) from None

    def _call(self, action: str, func: Callable[[], T]) -> T:
        with self._errors(action):
            return func()
        raise AssertionError("unreachable")  # pragma: no cover

    def _repository(self) -> Repository:
        if self._repo is None:
            self._repo = self._call("get repository", lambda: self._github.get_repo(self.repository))
        return self._repo

    # -- Forge: a change request is a pull request here ---------------------------------------

    def find_change_request(self, head: str) -> ChangeRequest | None:
        """The open pull request whose head branch (in this repository) is `head`, if any."""
        repo = self._repository()

        def find() -> ChangeRequest | None:
            # GitHub ignores a malformed head filter, so the head is checked again here.
            for pull in repo.get_pulls(state="open", head=f"{self.owner}:{head}"):
                if pull.head.ref == head:
                    return _to_pull(pull)
            return None

        return self._call("find pull request", find)

    def closed_change_request(self, head: str) -> ChangeRequest | None:
        """The newest pull request from `head` (in this repository) closed without merging, if any."""
        repo = self._repository()

        def find() -> ChangeRequest | None:
            # Newest first (GitHub's default order); merged ones say nothing about a person's refusal.
            for pull in repo.get_pulls(state="closed", head=f"{self.owner}:{head}"):
                if pull.head.ref == head and pull.merged_at is None:
                    return _to_pull(pull)
            return None

        return self._call("find closed pull request", find)

    def open_change_requests(self, head_prefix: str) -> list[ChangeRequest]:
        """Open pull requests whose head branch starts with `head_prefix`, newest first."""
        repo = self._repository()
        return self._call(
            "list pull requests",
            lambda: [_to_pull(p) for p in repo.get_pulls(state="open") if str(p.head.ref).startswith(head_prefix)],
        )

    def create_change_request(
        self, head: str, base: str, title: str, body: str, labels: Sequence[str]
    ) -> ChangeRequest:
        """Open a pull request from `head` into `base`, or update the open one from `head` if it exists.

        `created` of the answer says which: "opened", or "unchanged"/"updated" for one that was already open
        (another replica, or an earlier timed-out attempt, opened it; GitHub refuses a second one from the
        same head with 422 "A pull request already exists", and only then is the open one looked up).
        """
        repo = self._repository()
        try:
            pull = self._call(
                "create pull request",
                lambda: repo.create_pull(base=base, head=head, title=title, body=body),
            )
        except ForgeError:
            # Someone (or an earlier, timed-out attempt) opened it meanwhile: use that one.
            raced = self.find_change_request(head)
            if raced is None:
                raise
            return self._adopt(raced, title, body, labels)
        if labels:
            self._call("add labels", lambda: pull.add_to_labels(*labels))
        return _to_pull(pull)

    def _adopt(self, existing: ChangeRequest, title: str, body: str, labels: Sequence[str]) -> ChangeRequest:
        same = existing.title == title and existing.body == body
        pull = self._update(existing.number, title, body, labels)
        return replace(pull, created="unchanged" if same else "updated")

    def update_change_request(self, number: int, title: str, body: str) -> ChangeRequest:
        """Set the title and body of pull request `number`."""
        return self._update(number, title, body, ())

    def _update(self, number: int, title: str, body: str, labels: Sequence[str]) -> ChangeRequest:
        repo = self._repository()

        def update() -> ChangeRequest:
            pull = repo.get_pull(number)
            if pull.title != title or (pull.body or "") != body:
                pull.edit(title=title, body=body)
            if labels and set(labels) - {label.name for label in pull.labels}:
                pull.add_to_labels(*labels)
            return _to_pull(pull)

        return self._call(f"update pull request #{number}", update)

    def add_labels(self, number: int, labels: Sequence[str]) -> None:
        """Add `labels` to pull request `number`, keeping those it has: one request, nothing read first."""
        if not labels:
            return
        repo = self._repository()

        def add() -> None:
            # Straight to the pull request's issue on the client's own requester: `get_issue` would read the
            # issue first, and a second client would lack this one's connection settings.
            repo.requester.requestJsonAndCheck("POST", f"{repo.url}/issues/{number}/labels", input=list(labels))

        self._call(f"add labels to pull request #{number}", add)

    def get_change_request(self, number: int) -> ChangeRequest:
        """Pull request `number` in any state (to see whether a person merged or closed it)."""
        repo = self._repository()
        return self._call(f"get pull request #{number}", lambda: _to_pull(repo.get_pull(number)))

    def close_change_request(self, number: int, comment: str) -> None:
        """Comment on pull request `number` and close it; nothing happens if it is already closed."""
        repo = self._repository()

        def close() -> None:
            pull = repo.get_pull(number)
            if pull.state != "open":
                return
            if comment:
                pull.create_issue_comment(comment)
            pull.edit(state="closed")

        self._call(f"close pull request #{number}", close)

    def comment_change_request(self, number: int, comment: str) -> None:
        """Add a comment to pull request `number` (its conversation, as an issue comment)."""
        repo = self._repository()
        self._call(f"comment on pull request #{number}", lambda: repo.get_pull(number).create_issue_comment(comment))


def _deadline_connections(
    deadline: float,
) -> tuple[type[HTTPRequestsConnectionClass], type[HTTPSRequestsConnectionClass]]:
    """PyGithub's connection classes with the requests adapter swapped for one that keeps `deadline`."""

    class Http(HTTPRequestsConnectionClass):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.adapter = DeadlineAdapter(
                deadline, max_retries=self.retry, pool_connections=self.pool_size, pool_maxsize=self.pool_size
            )
            self.session.mount("http://", self.adapter)

    class Https(HTTPSRequestsConnectionClass):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.adapter = DeadlineAdapter(
                deadline, max_retries=self.retry, pool_connections=self.pool_size, pool_maxsize=self.pool_size
            )
            self.session.mount("https://", self.adapter)

    return Http, Https


def _to_pull(pull: GithubPull) -> ChangeRequest:
    # `merged_at` is in list results too; reading `merged` there would cost one more request per item.
    return ChangeRequest(
        number=int(pull.number),
        url=str(pull.html_url),
        head=str(pull.head.ref),
        base=str(pull.base.ref),
        title=str(pull.title),
        body=str(pull.body or ""),
        state=str(pull.state),
        merged_at=pull.merged_at,
        head_sha=str(pull.head.sha or ""),
        labels=tuple(str(label.name) for label in pull.labels),
    )
