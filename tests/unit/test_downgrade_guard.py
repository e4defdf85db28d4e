"""A tag list that lacks the tag running now (a registry replica behind, a list cut short, a deleted tag)
never moves an image back to an older tag: the image holds and a problem line says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitbot.config import Policy, load_policy
from gitbot.history import History
from gitbot.manifests import scan_text
from gitbot.planner import held_downgrades, moves_back, plan_images
from gitbot.versioning import parse_filter

APPS = "clusters/production/podinfo.yaml"
IMAGE = "ghcr.io/stefanprodan/podinfo"


def deployment(tag: str, name: str = "podinfo-ga") -> str:
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: test}}\n"
        f"spec:\n  template:\n    spec:\n      containers:\n        - name: podinfod\n"
        f"          image: {IMAGE}:{tag}\n"
    )


def ga_policy(tmp_path: Path, flt: str = "0.1.*") -> Policy:
    path = tmp_path / "production.yaml"
    path.write_text(
        "apiVersion: gitbot.dev/v1alpha1\nkind: Policy\nmetadata: {name: production}\nspec:\n"
        "  git: {url: https://git.example/config.git, paths: [clusters/production]}\n"
        "  images:\n"
        f"    - name: podinfo-ga\n      repository: {IMAGE}\n      filter: {flt!r}\n"
        "      targets: [{resource: Deployment/test/podinfo-ga, container: podinfod}]\n",
        encoding="utf-8",
    )
    return load_policy(path)


def plan(policy: Policy, running: str, listed: tuple[str, ...]) -> tuple[list[str], list[str]]:
    texts = {APPS: deployment(running)}
    targets = scan_text(APPS, texts[APPS])
    tags = {"podinfo-ga": listed}
    history = History("production")
    plans = plan_images(policy, targets, texts, tags, history, chain=True)
    news = [change.new for p in plans for change in p.changes]
    return news, [str(problem) for problem in held_downgrades(policy, targets, tags, history)]


def test_a_list_without_the_running_tag_does_not_move_it_back(tmp_path: Path) -> None:
    policy = ga_policy(tmp_path)
    news, problems = plan(policy, "0.1.3", ("0.1.0", "0.1.1", "0.1.2"))
    assert news == []
    assert problems == [
        f"{policy.source}:7: spec.images[0]: image podinfo-ga holds at 0.1.3: the tag list of {IMAGE} does not "
        "have it and the newest tag it allows, 0.1.2, is older; not moving back (a registry replica behind, a "
        "list cut short or a deleted tag)"
    ]


def test_a_list_without_the_running_tag_still_moves_it_forward(tmp_path: Path) -> None:
    news, problems = plan(ga_policy(tmp_path), "0.1.3", ("0.1.2", "0.1.4"))
    assert news == [f"{IMAGE}:0.1.4"]
    assert problems == []


def test_ordering_is_the_filters_not_the_texts(tmp_path: Path) -> None:
    # 0.1.10 is newer than 0.1.9 by version, older by text.
    news, problems = plan(ga_policy(tmp_path), "0.1.10", ("0.1.8", "0.1.9"))
    assert news == [] and len(problems) == 1
    news, problems = plan(ga_policy(tmp_path), "0.1.9", ("0.1.8", "0.1.10"))
    assert news == [f"{IMAGE}:0.1.10"] and problems == []


def test_a_running_tag_outside_the_filter_moves_to_the_filters_newest(tmp_path: Path) -> None:
    # A person narrowed the filter from 0.2.* to 0.1.*: going to 0.1.x is what the policy asks for.
    news, problems = plan(ga_policy(tmp_path), "0.2.0", ("0.1.1", "0.1.2"))
    assert news == [f"{IMAGE}:0.1.2"]
    assert problems == []


def test_a_listed_running_tag_is_left_to_the_list_and_warns_nothing(tmp_path: Path) -> None:
    news, problems = plan(ga_policy(tmp_path), "0.1.2", ("0.1.1", "0.1.2"))
    assert news == [] and problems == []


@pytest.mark.parametrize(
    ("old", "new", "ranked", "expected"),
    [
        ("0.1.3", "0.1.2", ("0.1.2",), True),
        ("0.1.3", "0.1.4", ("0.1.4",), False),
        ("0.1.3", "0.1.2", ("0.1.3", "0.1.2"), False),  # in the list: the list's own ranking decides
        ("v0.1.3", "0.1.3", ("0.1.3",), False),  # as new: not back
        ("latest", "0.1.2", ("0.1.2",), False),  # not of the filter's line
        ("bad tag", "0.1.2", ("0.1.2",), False),
    ],
)
def test_moves_back_compares_with_the_filters_ordering(
    old: str, new: str, ranked: tuple[str, ...], expected: bool
) -> None:
    assert moves_back(old, new, ranked, parse_filter("0.1.*")) is expected
