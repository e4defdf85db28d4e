"""Contract of GitWorkspace/GitCheckout against a real git smart-HTTP server on loopback."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from gitbot.adapters.gitrepo import GitWorkspace
from gitbot.domain import Author
from gitbot.errors import AuthError, ConfigError, GitError, PushRejectedError
from gitbot.ports import Workspace
from tests.contract.git.conftest import BOT, SEED, WorkspaceFactory
from tests.support.gitserver import OTHER_EMAIL, GitServer

pytestmark = pytest.mark.real

APP = "clusters/production/podinfo.yaml"
MESSAGE = (
    "gitbot(production): podinfo-ga 0.1.1 -> 0.1.2\n\n"
    "Newest tag matching 0.1.*.\n\n"
    "Gitbot-Policy: production\n"
    "Gitbot-Action: image-update\n"
    "Gitbot-Target: podinfo-ga\n"
    "Gitbot-From: 0.1.1\n"
    "Gitbot-To: 0.1.2\n"
    "Gitbot-Plan-Id: 3f2a9c\n"
)
PERSON = Author("Pat Person", "pat@example.test")


def test_workspace_satisfies_the_port(make_workspace: WorkspaceFactory) -> None:
    workspace: Workspace = make_workspace()
    with workspace.checkout() as checkout:
        assert (checkout.root / APP).read_text() == SEED[APP]


def test_checkout_is_fresh_each_cycle_and_removed_after(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    workspace = make_workspace()
    with workspace.checkout() as first:
        root = first.root
        (root / "stray.txt").write_text("left behind\n")
    assert not root.exists()
    other = git_server.commit_as_other(repo_name, {"README.md": "changed\n"}, "docs: change")
    with workspace.checkout() as second:
        assert second.root != root
        assert not (second.root / "stray.txt").exists()
        assert second.head == other
        assert (second.root / "README.md").read_text() == "changed\n"
    assert workspace.cache_path.is_dir()


def test_commit_push_and_log_with_trailers(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    workspace = make_workspace()
    with workspace.checkout() as checkout:
        base = checkout.head
        sha = checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.2\n"}, MESSAGE, BOT)
        checkout.push()
        log = checkout.log()
    assert git_server.head(repo_name) == sha
    assert git_server.read_file(repo_name, APP) == "image: ghcr.io/acme/podinfo:0.1.2\n"
    newest = log[0]
    assert newest.sha == sha
    assert newest.parents == (base,)
    assert newest.author == BOT
    assert newest.subject == "gitbot(production): podinfo-ga 0.1.1 -> 0.1.2"
    assert newest.trailer("gitbot-to") == "0.1.2"
    assert dict(newest.trailers) == {
        "Gitbot-Policy": "production",
        "Gitbot-Action": "image-update",
        "Gitbot-Target": "podinfo-ga",
        "Gitbot-From": "0.1.1",
        "Gitbot-To": "0.1.2",
        "Gitbot-Plan-Id": "3f2a9c",
    }
    assert newest.committed_at.tzinfo is not None
    assert log[1].trailers == ()
    assert log[1].author.name == "Seed Author"


def test_committer_is_configurable(make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str) -> None:
    workspace = make_workspace(committer=Author("Bot Committer", "committer@example.test"))
    with workspace.checkout() as checkout:
        checkout.commit({"new/file.txt": "x\n"}, "gitbot(p): add", PERSON)
        checkout.push()
    formatted = git_server.git(repo_name, "log", "-1", "--format=%an <%ae>|%cn <%ce>")
    assert formatted.strip() == "Pat Person <pat@example.test>|Bot Committer <committer@example.test>"


def test_concurrent_push_race_is_rejected_then_refresh_keeps_the_other_commit(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    workspace = make_workspace()
    with workspace.checkout() as checkout:
        checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.2\n"}, MESSAGE, BOT)
        # Another writer lands a commit between the bot's fetch and its push.
        theirs = git_server.commit_as_other(repo_name, {"README.md": "edited by a person\n"}, "docs: edit")
        with pytest.raises(PushRejectedError) as caught:
            checkout.push()
        assert git_server.head(repo_name) == theirs
        assert "rejected" in str(caught.value)
        checkout.refresh()
        assert checkout.head == theirs
        assert (checkout.root / APP).read_text() == SEED[APP]
        mine = checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.2\n"}, MESSAGE, BOT)
        checkout.push()
    log = git_server.log(repo_name)
    assert [c.sha for c in log[:2]] == [mine, theirs]
    assert log[1].author_email == OTHER_EMAIL
    assert git_server.read_file(repo_name, "README.md") == "edited by a person\n"


def test_rejected_push_after_reset_does_not_rewrite_history(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    workspace = make_workspace()
    with workspace.checkout() as checkout:
        base = checkout.head
        checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.2\n"}, MESSAGE, BOT)
        checkout.push()
        pushed = checkout.head
        # Going back and pushing would drop a published commit: the server must refuse it.
        checkout.reset(base)
        checkout.commit({"other.txt": "x\n"}, "gitbot(p): other", BOT)
        with pytest.raises(PushRejectedError):
            checkout.push()
    assert git_server.head(repo_name) == pushed


def test_wrong_password_is_a_clear_auth_error_without_the_token(
    make_workspace: WorkspaceFactory, git_server: GitServer
) -> None:
    bad = "wrong-token-5f0d1b77c2e4"
    workspace = make_workspace(token=bad)
    failures = git_server.auth_failures
    with pytest.raises(AuthError) as caught, workspace.checkout():
        pass
    message = str(caught.value)
    assert isinstance(caught.value, GitError)
    assert not caught.value.retryable
    assert "\n" not in message
    assert "refused the credentials" in message
    assert f"127.0.0.1:{git_server.port}" in message
    assert bad not in message
    assert "d3Jvbmct" not in message  # base64 prefix of the header value
    assert git_server.auth_failures > failures


def test_push_with_wrong_password_is_auth_error(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    workspace = make_workspace()
    with workspace.checkout() as checkout:
        checkout.commit({"x.txt": "x\n"}, "gitbot(p): x", BOT)
        # The token is revoked on the server in the middle of the cycle.
        with git_server.refusing_credentials(), pytest.raises(AuthError) as caught:
            checkout.push()
    assert git_server.token not in str(caught.value)
    assert git_server.log(repo_name)[0].subject == "Initial configuration"


def test_missing_branch_and_unreachable_server_are_git_errors(
    git_server: GitServer, repo_name: str, tmp_path: Path
) -> None:
    missing = GitWorkspace(
        git_server.url_for(repo_name),
        "nope",
        tmp_path / "c1",
        username=git_server.username,
        token=git_server.token,
        author=BOT,
    )
    with pytest.raises(GitError, match="branch nope does not exist"), missing.checkout():
        pass
    closed = GitWorkspace("http://127.0.0.1:9/none.git", "main", tmp_path / "c2", token=git_server.token, author=BOT)
    with pytest.raises(GitError) as caught, closed.checkout():
        pass
    assert not isinstance(caught.value, AuthError)
    assert git_server.token not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_url_with_credentials_and_bad_branch_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must not contain credentials") as caught:
        GitWorkspace("https://bot:s3cr3t-pass@example.test/x.git", "main", tmp_path, author=BOT)
    assert "s3cr3t-pass" not in str(caught.value)
    with pytest.raises(ConfigError, match="not a valid branch"):
        GitWorkspace("https://example.test/x.git", "bad..name", tmp_path, author=BOT)


SECRET = "Zq7canaryS3cret0x5f"


@pytest.mark.parametrize(
    "tail",
    [f"?access_token={SECRET}", f"?private_token={SECRET}&x=1", f"#token={SECRET}", f"?{SECRET}"],
)
def test_a_token_in_the_query_or_fragment_of_the_url_is_refused_before_git_runs(
    git_server: GitServer, repo_name: str, tmp_path: Path, tail: str
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(ConfigError, match="must not contain credentials") as caught:
        GitWorkspace(git_server.url_for(repo_name) + tail, "main", cache, token=git_server.token, author=BOT)
    assert SECRET not in caught.value.one_line() and SECRET not in (caught.value.hint or "")
    assert git_server.url_for(repo_name) in caught.value.one_line()
    assert not cache.exists() or _files_holding_any(cache, SECRET) == []


def test_a_token_as_the_user_of_an_https_url_is_not_repeated_in_the_refusal(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        GitWorkspace(f"https://ghp_{SECRET}@example.test/x.git", "main", tmp_path, author=BOT)
    assert SECRET not in caught.value.one_line()
    assert "https://example.test/x.git" in caught.value.one_line()


def _files_holding_any(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_token_is_never_stored_on_disk(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str, tmp_path: Path
) -> None:
    workspace = make_workspace()
    header = workspace.environment()["GIT_CONFIG_VALUE_1"].removeprefix("Authorization: Basic ")
    with workspace.checkout() as checkout:
        checkout.commit({"x.txt": "x\n"}, "gitbot(p): x", BOT)
        checkout.push()
        checkout.push_branch("gitbot/production/podinfo", checkout.head)
        checkout.refresh()
        git_file = (checkout.root / ".git").read_text()
        # Inside the cycle: the worktree and the cache (which holds the worktree's git metadata).
        during = _files_holding(checkout.root, workspace.cache_path, secrets=(git_server.token, header))
    after = _files_holding(workspace.cache_path, secrets=(git_server.token, header))
    assert during == [] and after == []
    config = (workspace.cache_path / "config").read_text()
    assert f"url = {git_server.url_for(repo_name)}" in config
    assert "gitdir:" in git_file


def _files_holding(*roots: Path, secrets: tuple[str, ...]) -> list[Path]:
    searched = [p for root in roots for p in root.rglob("*") if p.is_file()]
    assert len(searched) > 10
    return [p for p in searched if any(s.encode() in p.read_bytes() for s in secrets)]


def test_revert_and_revert_conflict(make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str) -> None:
    workspace = make_workspace()
    with workspace.checkout() as checkout:
        first = checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.2\n"}, MESSAGE, BOT)
        second = checkout.commit({"extra.txt": "extra\n"}, "gitbot(p): extra", BOT)
        reverted = checkout.revert([second, first], "gitbot(production): roll back", PERSON)
        assert reverted is not None
        assert (checkout.root / APP).read_text() == SEED[APP]
        assert not (checkout.root / "extra.txt").exists()
        head = checkout.log(max_count=1)[0]
        assert head.subject == "gitbot(production): roll back"
        assert head.author == PERSON
        assert head.parents == (second,)
        checkout.push()
    assert git_server.head(repo_name) == reverted

    with workspace.checkout() as checkout:
        bump = checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.3\n"}, "gitbot(p): 0.1.3", BOT)
        checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.4\n"}, "person: 0.1.4", PERSON)
        before = checkout.head
        assert checkout.revert([bump], "gitbot(p): revert 0.1.3", BOT) is None
        assert checkout.head == before
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=checkout.root, capture_output=True, text=True, check=True
        )
        assert status.stdout == ""
        assert (checkout.root / APP).read_text() == "image: ghcr.io/acme/podinfo:0.1.4\n"


def test_revert_finishes_with_further_edits_in_the_same_commit(make_workspace: WorkspaceFactory) -> None:
    with make_workspace().checkout() as checkout:
        first = checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.2\n"}, MESSAGE, BOT)
        second = checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.3\n"}, "gitbot(p): 0.1.3", BOT)
        seen: list[str] = []

        def finish() -> tuple[dict[str, str], str]:
            # Called on the reverted, uncommitted tree.
            seen.append((checkout.root / APP).read_text())
            return {APP: "image: ghcr.io/acme/podinfo:0.1.0\n", "note.txt": "why\n"}, "gitbot(p): back to 0.1.0"

        sha = checkout.revert([second], "gitbot(p): revert 0.1.3", BOT, finish)
        assert seen == ["image: ghcr.io/acme/podinfo:0.1.2\n"]
        assert sha == checkout.head
        head = checkout.log(max_count=1)[0]
        assert head.parents == (second,) and head.subject == "gitbot(p): back to 0.1.0"
        assert (checkout.root / APP).read_text() == "image: ghcr.io/acme/podinfo:0.1.0\n"
        changed = subprocess.run(
            ["git", "show", "--name-only", "--format=", "HEAD"], cwd=checkout.root, capture_output=True, text=True
        )
        assert changed.stdout.split() == [APP, "note.txt"]
        clean = subprocess.run(["git", "status", "--porcelain"], cwd=checkout.root, capture_output=True, text=True)
        assert clean.stdout == ""
        assert first in [c.sha for c in checkout.log()]


@pytest.mark.parametrize("outcome", ["none", "raises"])
def test_revert_given_up_by_its_finish_leaves_nothing(make_workspace: WorkspaceFactory, outcome: str) -> None:
    with make_workspace().checkout() as checkout:
        bump = checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.3\n"}, "gitbot(p): 0.1.3", BOT)

        def finish() -> tuple[dict[str, str], str] | None:
            if outcome == "raises":
                raise GitError("the reverted tree cannot be read")
            return None

        if outcome == "raises":
            with pytest.raises(GitError, match="cannot be read"):
                checkout.revert([bump], "gitbot(p): revert", BOT, finish)
        else:
            assert checkout.revert([bump], "gitbot(p): revert", BOT, finish) is None
        assert checkout.head == bump
        clean = subprocess.run(["git", "status", "--porcelain"], cwd=checkout.root, capture_output=True, text=True)
        assert clean.stdout == ""
        assert (checkout.root / APP).read_text() == "image: ghcr.io/acme/podinfo:0.1.3\n"


def test_revert_of_unknown_commit_is_git_error(make_workspace: WorkspaceFactory) -> None:
    with make_workspace().checkout() as checkout, pytest.raises(GitError, match="revert"):
        checkout.revert(["0" * 40], "gitbot(p): revert", BOT)


def test_push_branch_force_pushes_only_bot_branches(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    workspace = make_workspace()
    with workspace.checkout() as checkout:
        base = checkout.head
        one = checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.2\n"}, "gitbot(p): 0.1.2", BOT)
        checkout.push_branch("gitbot/production/podinfo", one)
        assert git_server.head(repo_name, "gitbot/production/podinfo") == one
        checkout.reset(base)
        two = checkout.commit({APP: "image: ghcr.io/acme/podinfo:0.1.3\n"}, "gitbot(p): 0.1.3", BOT)
        checkout.push_branch("gitbot/production/podinfo", two)  # not a fast-forward: forced
        assert git_server.head(repo_name, "gitbot/production/podinfo") == two
        for branch in ("main", "release", "gitbotx/a", "gitbot/bad..name"):
            with pytest.raises(GitError, match="refusing to force-push"):
                checkout.push_branch(branch, two)
    assert git_server.head(repo_name) == base
    assert git_server.branches(repo_name) == ["gitbot/production/podinfo", "main"]


def test_commit_refuses_paths_outside_and_empty_changes(make_workspace: WorkspaceFactory) -> None:
    with make_workspace().checkout() as checkout:
        for bad in ("../escape.txt", "/etc/passwd", ".git/config", "sub/.git/hooks/pre-commit"):
            with pytest.raises(GitError, match="refusing to write"):
                checkout.commit({bad: "x"}, "gitbot(p): bad", BOT)
        with pytest.raises(GitError, match="nothing to commit"):
            checkout.commit({APP: SEED[APP]}, "gitbot(p): same", BOT)
        with pytest.raises(GitError, match="empty message"):
            checkout.commit({APP: "changed\n"}, "  \n", BOT)


def test_ssh_environment_uses_the_key_file(tmp_path: Path) -> None:
    key = tmp_path / "id ed25519"
    with pytest.raises(ConfigError, match="SSH key file"):
        GitWorkspace("ssh://git@example.test/a.git", "main", tmp_path, ssh_key_file=key, author=BOT)
    key.write_text("not a real key\n")
    workspace = GitWorkspace(
        "ssh://git@example.test/acme/config.git",
        "main",
        tmp_path / "cache",
        ssh_key_file=key,
        known_hosts_file=tmp_path / "known_hosts",
        author=BOT,
    )
    env = workspace.environment()
    assert env["GIT_SSH_COMMAND"].startswith(f"ssh -i '{key}' -o IdentitiesOnly=yes -o BatchMode=yes")
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert "GIT_CONFIG_KEY_1" not in env


def test_checkout_is_cleaned_up_when_the_cycle_fails(make_workspace: WorkspaceFactory) -> None:
    workspace = make_workspace()
    with pytest.raises(RuntimeError, match="planner failed"), workspace.checkout() as checkout:
        root = checkout.root
        checkout.commit({"x.txt": "x\n"}, "gitbot(p): x", BOT)
        raise RuntimeError("planner failed")
    assert not root.exists()
    assert not (workspace.cache_path / "worktrees").exists() or not any((workspace.cache_path / "worktrees").iterdir())
    with workspace.checkout() as again:
        assert not (again.root / "x.txt").exists()


def test_damaged_cache_is_rebuilt(make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str) -> None:
    workspace = make_workspace()
    with workspace.checkout():
        pass
    for path in workspace.cache_path.iterdir():
        if path.is_file():
            path.write_text("garbage")
    with workspace.checkout() as checkout:
        assert checkout.head == git_server.head(repo_name)


def test_cycles_on_one_cache_are_serialised(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    workspace = make_workspace()
    results: list[str] = []

    def cycle(index: int) -> None:
        with workspace.checkout() as checkout:
            for attempt in range(5):
                checkout.commit({f"file-{index}-{attempt}.txt": "x\n"}, f"gitbot(p): {index}", BOT)
                try:
                    checkout.push()
                except PushRejectedError:
                    checkout.refresh()
                    continue
                results.append(checkout.head)
                return

    threads = [threading.Thread(target=cycle, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 3
    subjects = [c.subject for c in git_server.log(repo_name)]
    assert sorted(subjects[:3]) == ["gitbot(p): 0", "gitbot(p): 1", "gitbot(p): 2"]


def test_large_push_uses_chunked_upload(
    make_workspace: WorkspaceFactory, git_server: GitServer, repo_name: str
) -> None:
    # Above git's 1 MiB http.postBuffer the pack is sent with chunked transfer encoding.
    big = "".join(f"line {i} {os.urandom(16).hex()}\n" for i in range(60000))
    chunked = git_server.chunked_requests
    with make_workspace().checkout() as checkout:
        checkout.commit({"big.txt": big}, "gitbot(p): big file", BOT)
        checkout.push()
    assert git_server.read_file(repo_name, "big.txt") == big
    assert git_server.chunked_requests > chunked


def test_commit_refuses_to_write_through_a_symbolic_link(make_workspace: WorkspaceFactory, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    workspace = make_workspace()
    with workspace.checkout() as checkout:
        (checkout.root / "linked").symlink_to(outside, target_is_directory=True)
        with pytest.raises(GitError, match="symbolic link"):
            checkout.commit({"linked/app.yaml": "image: x:2\n"}, "gitbot(p): write", BOT)
    assert not (outside / "app.yaml").exists()


def test_log_reads_messages_holding_the_separators_it_uses(make_workspace: WorkspaceFactory) -> None:
    workspace = make_workspace()
    with workspace.checkout() as checkout:
        message = "odd\x1fsubject\n\nbody with \x1e and \x1f inside\n\nGitbot-Policy: p\nGitbot-Action: image-update\n"
        checkout.commit({"odd.txt": "x\n"}, message, BOT)
        newest = checkout.log(5)[0]
    assert newest.subject == "odd\x1fsubject"
    assert newest.body.startswith("body with \x1e and \x1f inside")
    assert newest.trailer("Gitbot-Action") == "image-update"
