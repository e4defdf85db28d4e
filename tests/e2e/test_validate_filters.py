"""`gitbot validate --check-manifests` warns about a filter that no tag of its image matches."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import AuthRegistry, manifest, policy
from tests.e2e.test_validate_manifests import validate_check_manifests
from tests.support.gitserver import GitServer
from tests.support.registry import push_tags


def test_a_filter_that_matches_no_tag_is_warned_about_with_the_count(
    tmp_path: Path,
    git_server: GitServer,
    auth_registry: AuthRegistry,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = auth_registry.running
    repository = f"{registry.host}/acme/nomatch"
    push_tags(
        registry.url, "acme/nomatch", ["2.0.0", "2.1.0", "latest"], auth=(auth_registry.user, auth_registry.password)
    )
    repo = git_server.unique_name("nomatch")
    git_server.create_repo(repo, {"clusters/staging/app.yaml": manifest(f"{repository}:2.0.0", "staging")})
    policies = tmp_path / "policies"
    policies.mkdir()
    path = policies / "staging.yaml"
    # The filter `1.0.*` was copied from another image: none of these tags is a 1.0 release.
    path.write_text(
        policy(
            "staging",
            namespace="staging",
            extra="",
            git_url=git_server.url_for(repo),
            repository=repository,
            registry_host=registry.host,
        )
    )
    code, out, err = validate_check_manifests(policies, git_server, auth_registry, tmp_path, monkeypatch, capsys)

    assert code == 0, err
    assert out.splitlines()[-1] == "1 policy binds its manifests"
    assert err.splitlines() == [
        f"gitbot: warning: {path}:9: spec.images[0].filter: 0 of 3 tags of {repository} match '1.0.*' "
        "(some of its tags: 2.0.0, 2.1.0, latest)"
    ]
