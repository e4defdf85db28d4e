"""One image's failed tag lookup spoils only that image: the planner plans every other one, the failure is
named by image, registry host and one line, and the service counts it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from gitbot.commands.runner import summarize
from gitbot.config import Policy, load_policy
from gitbot.cycle import CycleResult, unplanned_by_failure
from gitbot.errors import AuthError, ConfigError, RegistryError
from gitbot.gather import list_image_tags
from gitbot.history import History
from gitbot.manifests import scan_text
from gitbot.planner import LookupFailure, lookup_failures, plan_images, registry_host
from gitbot.service import CycleSummary, ServiceMetrics

APPS = "clusters/production/apps.yaml"
HEALTHY = "127.0.0.1:5000/acme/api"
BROKEN = "registry.broken.example:8443/acme/web"


def apps() -> str:
    return "---\n".join(
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: prod}}\n"
        f"spec:\n  template:\n    spec:\n      containers:\n        - name: {name}\n"
        f"          image: {repository}:1.0.0\n"
        for name, repository in (("api", HEALTHY), ("web", BROKEN))
    )


def two_registries(tmp_path: Path, group: str = "per-image") -> Policy:
    path = tmp_path / "production.yaml"
    path.write_text(
        "apiVersion: gitbot.dev/v1alpha1\nkind: Policy\nmetadata: {name: production}\nspec:\n"
        "  git: {url: https://git.example.test/acme/c.git, paths: [clusters/production]}\n"
        f"  delivery: {{mode: commit, group: {group}}}\n"
        "  images:\n"
        f"    - {{name: api, repository: {HEALTHY}, filter: '1.0.*', targets: [{{resource: Deployment/prod/api}}]}}\n"
        f"    - {{name: web, repository: {BROKEN}, filter: '1.0.*', targets: [{{resource: Deployment/prod/web}}]}}\n",
        encoding="utf-8",
    )
    return load_policy(path)


class SplitRegistry:
    """Answers for the healthy repository; raises what it is given for the others."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.healthy = HEALTHY
        self.asked: list[str] = []

    def refuse_all(self) -> SplitRegistry:
        self.healthy = ""
        return self

    def list_tags(self, image: str) -> Sequence[str]:
        self.asked.append(image)
        if image == self.healthy:
            return ["1.0.0", "1.0.1"]
        raise self.error


def test_registry_host_is_the_one_a_person_wrote() -> None:
    assert registry_host("127.0.0.1:5000/acme/api") == "127.0.0.1:5000"
    assert registry_host("ghcr.io/stefanprodan/podinfo") == "ghcr.io"
    assert registry_host("localhost/app") == "localhost"
    assert registry_host("stefanprodan/podinfo") == "docker.io"
    assert registry_host("nginx") == "docker.io"


def test_a_failure_names_image_host_and_error_once_on_one_line(tmp_path: Path) -> None:
    policy = two_registries(tmp_path)
    errors = {"web": "registry registry.broken.example:8443: tag list of acme/web is\nnot JSON", "api": "x"}
    failures = lookup_failures(policy, errors)
    assert [f.image for f in failures] == ["api", "web"], "in the policy's order"
    web = failures[1]
    assert web.host == "registry.broken.example:8443"
    assert web.one_line() == (
        "image web: tag lookup at registry registry.broken.example:8443 failed: tag list of acme/web is not JSON"
    )
    assert LookupFailure("web", "h", "cannot reach h").one_line() == (
        "image web: tag lookup at registry h failed: cannot reach h"
    )


@pytest.mark.parametrize("error", [RegistryError("registry x: listing failed with HTTP 500"), AuthError("refused")])
def test_each_lookup_fails_alone_and_the_rest_is_listed(tmp_path: Path, error: Exception) -> None:
    policy = two_registries(tmp_path)
    registry = SplitRegistry(error)
    tags, failures = list_image_tags(policy, registry)
    assert registry.asked == [HEALTHY, BROKEN]
    assert dict(tags) == {"api": ["1.0.0", "1.0.1"]}
    assert [(f.image, f.host) for f in failures] == [("web", "registry.broken.example:8443")]
    assert str(error) in failures[0].one_line()


def test_a_cycle_with_nothing_left_to_do_fails_as_a_whole(tmp_path: Path) -> None:
    policy = two_registries(tmp_path)
    everything_down = RegistryError("down")
    with pytest.raises(RegistryError) as caught:
        list_image_tags(policy, SplitRegistry(everything_down).refuse_all())
    assert "image api: tag lookup at registry 127.0.0.1:5000 failed: down" in str(caught.value)
    assert "image web: tag lookup at registry registry.broken.example:8443 failed: down" in str(caught.value)
    single = load_policy(_one_image(tmp_path))
    with pytest.raises(RegistryError) as alone:
        list_image_tags(single, SplitRegistry(everything_down))
    assert alone.value is everything_down, "one image: its own error, hint and type"


def _one_image(tmp_path: Path) -> Path:
    path = tmp_path / "single.yaml"
    text = (tmp_path / "production.yaml").read_text(encoding="utf-8")
    path.write_text(text[: text.index("    - {name: api")] + text[text.index("    - {name: web") :], encoding="utf-8")
    return path


def test_a_bad_setting_is_not_taken_for_a_failing_registry(tmp_path: Path) -> None:
    policy = two_registries(tmp_path)
    with pytest.raises(ConfigError):
        list_image_tags(policy, SplitRegistry(ConfigError("registry x: plain HTTP is not allowed")))


@pytest.mark.parametrize("group", ["per-image", "all"])
def test_the_planner_plans_every_image_whose_tags_are_known(tmp_path: Path, group: str) -> None:
    policy = two_registries(tmp_path, group)
    texts = {APPS: apps()}
    targets = scan_text(APPS, texts[APPS])
    tags, _failures = list_image_tags(policy, SplitRegistry(RegistryError("down")))
    plans = plan_images(policy, targets, texts, tags, History("production"), chain=True)
    assert [[c.new for c in p.changes] for p in plans] == [[f"{HEALTHY}:1.0.1"]]
    assert BROKEN + ":1.0.0" in dict(plans[0].files)[APPS], "the failed image keeps its tag"


def test_pull_requests_of_failed_images_are_kept_not_closed(tmp_path: Path) -> None:
    failure = LookupFailure("web", "h", "down")
    assert unplanned_by_failure(two_registries(tmp_path), [failure]) == {"web"}
    (tmp_path / "grouped").mkdir()
    assert unplanned_by_failure(two_registries(tmp_path / "grouped", "all"), [failure]) == {"images"}
    assert unplanned_by_failure(two_registries(tmp_path), []) == frozenset()


def test_the_service_logs_and_counts_failed_lookups_of_a_cycle_that_went_ahead() -> None:
    failure = LookupFailure("web", "registry.broken.example:8443", "cannot reach it")
    summary = summarize(CycleResult("production", (), (), "", 1, "h", (), (failure,)), 0.5)
    assert summary.outcome == "unchanged" and summary.lookup_failures == (failure,)
    metrics = ServiceMetrics()
    metrics.record_cycle(summary, now=0)
    metrics.record_cycle(CycleSummary("production", "unchanged", lookup_failures=(failure,)), now=0)
    text = metrics.exposition().decode()
    assert (
        'gitbot_image_lookup_failures_total{host="registry.broken.example:8443",image="web",policy="production"} 2.0'
        in text
    )
    assert 'gitbot_errors_total{policy="production"' not in text, "the cycle itself did not fail"
