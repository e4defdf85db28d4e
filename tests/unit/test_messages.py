"""Commit and pull request text: subjects, trailers, stable plan ids, the hidden marker, the change table."""

from __future__ import annotations

from dataclasses import replace

from gitbot.domain import Change, TagSelection
from gitbot.messages import (
    ImageUpdate,
    change_table,
    image_commit_body,
    image_trailers,
    plan_id,
    plan_id_in,
    pull_request_body,
    render_message,
    subject_for_images,
)

CHANGE = Change(
    "clusters/prod/podinfo.yaml",
    0,
    "/spec/template/spec/containers/0/image",
    "Deployment/test/podinfo-ga",
    "image",
    "ghcr.io/stefanprodan/podinfo:0.1.1",
    "ghcr.io/stefanprodan/podinfo:0.1.2",
)
UPDATE = ImageUpdate(
    "podinfo-ga",
    "ghcr.io/stefanprodan/podinfo",
    "0.1.*",
    "0.1.1",
    "0.1.2",
    TagSelection("0.1.2", ("0.1.2", "0.1.1", "0.1.0"), quarantined=("0.1.3",), ignored=("bad tag",)),
    (CHANGE,),
)


def test_subject_reads_like_the_convention() -> None:
    assert subject_for_images("production", [UPDATE]) == "gitbot(production): podinfo-ga 0.1.1 -> 0.1.2"
    two = subject_for_images("production", [UPDATE, UPDATE])
    assert two.startswith("gitbot(production): update 2 images (")


def test_plan_id_is_stable_and_depends_on_the_change() -> None:
    first = plan_id("production", "podinfo-ga", "image-update", [CHANGE])
    assert first == plan_id("production", "podinfo-ga", "image-update", [CHANGE])
    other = replace(CHANGE, new="ghcr.io/stefanprodan/podinfo:0.1.3")
    assert first != plan_id("production", "podinfo-ga", "image-update", [other])
    assert first != plan_id("staging", "podinfo-ga", "image-update", [CHANGE])


def test_message_ends_with_trailers_in_order() -> None:
    pid = plan_id("production", "podinfo-ga", "image-update", [CHANGE])
    message = render_message(
        "subject", image_commit_body("production", [UPDATE]), image_trailers("production", [UPDATE], pid)
    )
    tail = message.rstrip("\n").split("\n\n")[-1].splitlines()
    assert tail == [
        "Gitbot-Policy: production",
        "Gitbot-Action: image-update",
        "Gitbot-Target: podinfo-ga",
        "Gitbot-From: 0.1.1",
        "Gitbot-To: 0.1.2",
        f"Gitbot-Plan-Id: {pid}",
    ]
    assert "matches the filter `0.1.*`" in message
    assert "Skipped as quarantined" in message and "0.1.3" in message
    assert "gitbot rollback podinfo-ga --policy production" in message


def test_pull_request_body_hides_the_plan_id() -> None:
    body = pull_request_body(summary="s", changes=[CHANGE], why="w", evidence="", rollback="r", plan="abc123")
    assert plan_id_in(body) == "abc123"
    assert "### Evidence" not in body
    assert plan_id_in("no marker here") is None


def test_change_table_escapes_pipes() -> None:
    odd = Change("a|b.yaml", 0, "/x", "Kind//n", "tag", "1", "2")
    table = change_table([odd])
    assert "a\\|b.yaml" in table
    assert table.splitlines()[2].count(" | ") == 4


def test_a_commit_of_several_images_names_one_rollback_command() -> None:
    canary = replace(UPDATE, name="podinfo-canary", old="0.2.0", new="0.2.1")
    body = image_commit_body("production", [UPDATE, canary])
    # `gitbot rollback` takes one NAME; it reverts the whole commit.
    assert "`gitbot rollback podinfo-ga --policy production` (it reverts all 2 images of this commit)" in body
    assert "rollback podinfo-ga podinfo-canary" not in body


CANARY_SECRET = "Zq7canaryS3cret0x5f"


def test_a_credential_quoted_in_evidence_never_reaches_a_commit_or_pull_request() -> None:
    evidence = (
        f"| requests | inconclusive | query failed: Prometheus answered HTTP 401: refused Bearer {CANARY_SECRET} |"
    )
    body = pull_request_body(summary="s", changes=[CHANGE], why="", evidence=evidence, rollback="r", plan="abc123")
    message = render_message("gitbot(p): podinfo canary 10% -> 60%", evidence, [("Gitbot-Plan-Id", "abc123")])

    for text in (body, message):
        assert CANARY_SECRET not in text and "refused Bearer ***" in text
    assert plan_id_in(body) == "abc123" and message.endswith("\n\nGitbot-Plan-Id: abc123\n")
