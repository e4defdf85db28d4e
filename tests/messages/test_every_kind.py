"""Every kind of commit message and pull request body gitbot writes, against reviewed golden files.

Each kind is made by the code that makes it in a cycle or a command (planner, rollout, manual), from the
production example policy. The golden files under `golden/` were read for accuracy: each says what the
change does and how it is undone, in the words of that kind only. `GITBOT_UPDATE_GOLDEN=1` rewrites them
(then read the diff). The charts in them are rendered by the real Mermaid library.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitbot.analysis import CheckSpec, render_latency_chart
from gitbot.canary import CanaryDecision
from gitbot.config import Policy, load_policy
from gitbot.delivery import pull_request_text
from gitbot.domain import Analysis, Author, Change, CheckResult, CommitInfo, Plan, TagSelection, Target
from gitbot.history import History, read_history
from gitbot.manifests import scan_text
from gitbot.messages import ImageUpdate, hand_rollback_message, render_message
from gitbot.planner import image_plan, plan_canaries
from gitbot.rollout import (
    CanaryHistory,
    Observation,
    marker_message,
    read_route,
    restart_on_new_image,
    rollback_commit_message,
    rollback_plan,
    settle_rollback,
    step_plan,
)
from tests.support.mermaid import mermaid_blocks, render

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
APPS = "clusters/production/podinfo.yaml"
ROUTES = "clusters/production/routing.yaml"
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
STEP10, STEP60 = "1" * 40, "6" * 40
VICTIM = "9" * 40
DIGEST_OLD, DIGEST_NEW = "sha256:" + "ab" * 32, "sha256:" + "cd" * 32


def policy_with(replacements: tuple[tuple[str, str], ...] = ()) -> Policy:
    text = (REPO / "policies" / "production.yaml").read_text(encoding="utf-8")
    for old, new in replacements:
        text = text.replace(old, new)
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"gitbot-golden-{os.getpid()}-{abs(hash(replacements))}.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        return load_policy(path)
    finally:
        path.unlink()


PRODUCTION = policy_with()


def deployments(ga: str, canary: str) -> str:
    return "---\n".join(
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: test}}\n"
        f"spec:\n  template:\n    spec:\n      containers:\n        - name: podinfod\n"
        f"          image: ghcr.io/stefanprodan/podinfo{tag}\n"
        for name, tag in (("podinfo-ga", ga), ("podinfo-canary", canary))
    )


def routes(ga: int, canary: int) -> str:
    return (
        "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\n"
        "metadata: {name: podinfo, namespace: test}\nspec:\n  http:\n    - route:\n"
        f"        - destination: {{host: podinfo, subset: ga}}\n          weight: {ga}\n"
        f"        - destination: {{host: podinfo, subset: canary}}\n          weight: {canary}\n"
    )


def files(ga: str = ":0.1.1", canary: str = ":0.2.1", weights: tuple[int, int] = (90, 10)) -> dict[str, str]:
    return {APPS: deployments(ga, canary), ROUTES: routes(*weights)}


def targets_of(texts: dict[str, str]) -> list[Target]:
    return [t for file, text in texts.items() for t in scan_text(file, text)]


def chart() -> str:
    start = NOW.timestamp() - 300
    canary = [(start + 15 * i, 175.0 + (40.0 * (i - 10) if i > 10 else 0.0)) for i in range(21)]
    ga = [(start + 15 * i, 175.0) for i in range(21)]
    return render_latency_chart(canary, ga, (CheckSpec("latency-p99", max=500.0, max_ratio=1.2),))


def observation(verdict: str) -> Observation:
    if verdict == "pass":
        checks = (
            CheckResult("success-rate", "pass", 100.0, 100.0, ">= 99%"),
            CheckResult("latency-p99", "pass", 180.0, 175.0, "<= 1.2x GA, <= 500 ms"),
        )
        summary = "all checks passed"
    else:
        checks = (
            CheckResult("success-rate", "pass", 100.0, 100.0, ">= 99%"),
            CheckResult("latency-p99", "fail", 575.0, 175.0, "<= 1.2x GA, <= 500 ms"),
        )
        summary = "p99 3.29x GA"
    analysis = Analysis(verdict, checks, NOW - timedelta(minutes=5), NOW, summary)  # type: ignore[arg-type]
    return Observation(analysis, 10.0 if verdict == "pass" else 60.0, NOW - timedelta(minutes=11), chart())


def update(name: str, old: str, new: str, texts: dict[str, str], notes: str = "") -> ImageUpdate:
    change = next(
        replace_value(t, new) for t in targets_of(texts) if t.kind == "image" and t.resource.endswith(f"/{name}")
    )
    tags = tuple(dict.fromkeys((new.split("@")[0], old.split("@")[0], f"{new[:3]}.0")))
    selection = TagSelection(tags[0], tags)
    return ImageUpdate(
        name, "ghcr.io/stefanprodan/podinfo", f"{new[:3]}.*", old, new, selection, (change,), notes=notes
    )


def replace_value(target: Target, tag: str) -> Change:
    image = target.value.split(":")[0].split("@")[0]
    return Change(
        target.file, target.document, target.pointer, target.resource, target.kind, target.value, f"{image}:{tag}"
    )


def image_kinds() -> dict[str, tuple[Plan, str | None]]:
    texts = files()
    single = image_plan(PRODUCTION, "podinfo-ga", [update("podinfo-ga", "0.1.1", "0.1.2", texts)], texts)
    both = [update("podinfo-ga", "0.1.1", "0.1.2", texts), update("podinfo-canary", "0.2.1", "0.2.2", texts)]
    group = image_plan(PRODUCTION, "all", both, texts)
    pinned = files(ga=f":0.1.1@{DIGEST_OLD}")
    note = f"0.1.1 now serves {DIGEST_NEW} (was {DIGEST_OLD}): pinned again, as the tag moved to another manifest."
    repin = image_plan(
        PRODUCTION,
        "podinfo-ga",
        [update("podinfo-ga", f"0.1.1@{DIGEST_OLD}", f"0.1.1@{DIGEST_NEW}", pinned, note)],
        pinned,
    )
    canary_update = image_plan(PRODUCTION, "podinfo-canary", [update("podinfo-canary", "0.2.1", "0.2.2", texts)], texts)
    route = read_route(PRODUCTION, 0, targets_of(texts))
    (restart,) = restart_on_new_image(PRODUCTION, [canary_update], {"podinfo": route}, texts, chain=False)
    return {
        "image-update": (single, None),
        "group-image-update": (group, None),
        "digest-repin": (repin, None),
        "restart-on-new-image": (restart, None),
    }


def canary_kinds() -> dict[str, tuple[Plan, str | None]]:
    texts = files()
    targets = targets_of(texts)
    route = read_route(PRODUCTION, 0, targets)
    (outcome,) = plan_canaries(
        PRODUCTION, targets, texts, History("production"), {"podinfo": route}, {"podinfo": observation("pass")}, NOW
    )
    assert outcome.plan is not None and outcome.plan.action == "canary-step"
    decision = CanaryDecision("step", 10, 60, "stepped by hand from 10% to 60%")
    hand = step_plan(PRODUCTION, route, decision, Observation(None, None, None), texts, to=60, manual=True)

    at60 = files(weights=(40, 60))
    route60 = read_route(PRODUCTION, 0, targets_of(at60))
    hist = CanaryHistory(NOW - timedelta(minutes=20), (STEP60, STEP10), False, False, None, False, "")
    failed = CanaryDecision("rollback", 60, 0, "analysis failed at 60%: roll back to 0%")
    rollback = rollback_plan(PRODUCTION, route60, hist, failed, observation("fail"), at60, "0.2.1")
    restores_zero = settle_rollback(rollback, read_route(PRODUCTION, 0, targets_of(files(weights=(100, 0)))), {})
    restored = files(weights=(90, 10))
    restores_ten = settle_rollback(rollback, read_route(PRODUCTION, 0, targets_of(restored)), restored)

    promoting = policy_with((("onComplete: hold", "onComplete: promote\n      promoteTo: podinfo-ga"),))
    full = files(weights=(0, 100))
    full_targets = targets_of(full)
    passed = Observation(observation("pass").analysis, 100.0, NOW - timedelta(hours=1), chart())
    (promoted,) = plan_canaries(
        promoting,
        full_targets,
        full,
        History("production"),
        {"podinfo": read_route(promoting, 0, full_targets)},
        {"podinfo": passed},
        NOW,
    )
    assert promoted.plan is not None and promoted.plan.action == "promote"
    return {
        "canary-step": (outcome.plan, None),
        "canary-step-by-hand": (hand, None),
        "canary-rollback-by-revert": (rollback, restores_zero[1]),
        "canary-rollback-by-revert-then-to-0": (rollback, restores_ten[1]),
        "canary-rollback-by-plain-commit": (rollback, rollback_commit_message(rollback)),
        "promote": (promoted.plan, None),
    }


def hand_rollback() -> Plan:
    """The plan `gitbot rollback podinfo-ga` makes of a standing image update (see manual.rollback)."""
    name, quarantine = "podinfo-ga", [("podinfo-ga", "0.1.2")]
    message = hand_rollback_message(PRODUCTION.name, name, VICTIM, "0.1.1", "0.1.2", quarantine)
    subject, body, trailers, pid = message.subject, message.body, message.trailers, message.plan_id
    return Plan(PRODUCTION.name, name, "rollback", (), (), subject, body, trailers, pid, body, reverts=(VICTIM,))


def every_kind() -> dict[str, tuple[str, str]]:
    """Per kind: its commit message and its pull request body ("" for a marker, which is never proposed)."""
    kinds = {**image_kinds(), **canary_kinds(), "rollback-by-hand": (hand_rollback(), None)}
    out = {
        name: (message or render_message(plan.subject, plan.body, plan.trailers), pull_request_text(PRODUCTION, plan))
        for name, (plan, message) in kinds.items()
    }
    out["pause"] = (marker_message(PRODUCTION, "podinfo", "pause", "paused by gitbot pause podinfo"), "")
    out["resume"] = (marker_message(PRODUCTION, "podinfo", "resume", "resumed by gitbot resume podinfo"), "")
    return out


KINDS = every_kind()


def golden_text(message: str, body: str) -> str:
    text = f"=== commit message ===\n{message}"
    return text + (f"=== pull request body ===\n{body}" if body else "")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_text_of_each_kind_is_the_reviewed_one(kind: str) -> None:
    path = GOLDEN / f"{kind}.txt"
    text = golden_text(*KINDS[kind])
    if os.environ.get("GITBOT_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text


def test_only_a_revert_says_it_reverts_and_only_an_image_speaks_of_quarantined_tags() -> None:
    reverts = {"canary-rollback-by-revert", "canary-rollback-by-revert-then-to-0", "rollback-by-hand"}
    for kind, (message, body) in KINDS.items():
        assert ("This reverts commit" in message) == (kind in reverts), kind
        # A pull request lists what it undoes itself: git revert's lines would run together in Markdown.
        assert "This reverts commit" not in body, kind
        if body and kind not in ("image-update", "group-image-update", "restart-on-new-image"):
            assert "reverted tag is quarantined" not in body and "reverted tags are" not in body, kind
        if body:
            # Every pull request shows what it changes: a table of values, or the commits it undoes.
            table = re.search(r"### Changes\n\n\| file .*\n\| --- .*\n\| `", body)
            assert table or "### Undoes\n\n- " in body, kind


def test_a_plain_commit_rollback_is_read_back_as_undoing_its_steps() -> None:
    message = KINDS["canary-rollback-by-plain-commit"][0]
    subject, _, rest = message.partition("\n\n")
    block = rest.strip().rsplit("\n\n", 1)[1]
    trailers = tuple((key, value) for key, _, value in (line.partition(": ") for line in block.splitlines()))
    bot = Author("gitbot", "gitbot@example.org")

    def commit(sha: str, parent: str, text: str, pairs: tuple[tuple[str, str], ...]) -> CommitInfo:
        at = NOW + timedelta(minutes=int(sha[0], 16))
        return CommitInfo(sha, (parent,), bot, at, text, rest, pairs)

    def step(sha: str, parent: str, old: str, new: str) -> CommitInfo:
        pairs = (
            ("Gitbot-Policy", "production"),
            ("Gitbot-Action", "canary-step"),
            ("Gitbot-Target", "podinfo"),
            ("Gitbot-From", old),
            ("Gitbot-To", new),
        )
        return commit(sha, parent, f"step {new}", pairs)

    log = [
        commit("f" * 40, STEP60, subject, trailers),
        step(STEP60, STEP10, "10", "60"),
        step(STEP10, "0" * 40, "0", "10"),
    ]
    history = read_history(log, "production")
    assert [c.reverted_by.sha if c.reverted_by else None for c in history.commits[1:]] == ["f" * 40] * 2
    assert list(history.quarantined("podinfo-canary")) == ["0.2.1"]


def test_the_charts_in_messages_render(tmp_path: Path) -> None:
    charts = [block for message, body in KINDS.values() for block in mermaid_blocks(message + body)]
    assert len(charts) >= 4
    results = render(charts, tmp_path)
    assert [result.error for result in results if not result.ok] == []
