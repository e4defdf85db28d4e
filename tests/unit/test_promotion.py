"""Promotion gates, pure: the earlier environment's history in landing order + soak + now -> which tags may go
on, with the evidence or what holds each back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from gitbot.config import load_policy
from gitbot.domain import Author, CommitInfo, Plan
from gitbot.history import History, read_history
from gitbot.manifests import scan_text
from gitbot.planner import plan_images
from gitbot.promotion import CanaryGate, Gate, TagVerdict, held_back, judge_gate, unreadable_gate

REPO = Path(__file__).resolve().parents[2]

T0 = datetime(2026, 12, 1, 10, 2, tzinfo=UTC)
BOT = Author("gitbot", "gitbot@example.org")
ALICE = Author("Alice", "alice@example.org")
SOAK = timedelta(hours=2)


class Branch:
    """A first-parent line of commits, newest last, each at the time given."""

    def __init__(self) -> None:
        self.commits: list[CommitInfo] = []

    def add(
        self,
        at: datetime,
        subject: str,
        trailers: tuple[tuple[str, str], ...] = (),
        body: str = "",
        author: Author = BOT,
        parents: tuple[str, ...] | None = None,
    ) -> CommitInfo:
        sha = f"{len(self.commits) + 1:040x}"
        if parents is None:
            parents = (self.commits[-1].sha,) if self.commits else ()
        commit = CommitInfo(sha, parents, author, at, subject, body, trailers)
        self.commits.append(commit)
        return commit

    def update(self, at: datetime, old: str, new: str, image: str = "podinfo", policy: str = "staging") -> CommitInfo:
        return self.add(
            at,
            f"gitbot({policy}): {image} {old} -> {new}",
            (
                ("Gitbot-Policy", policy),
                ("Gitbot-Action", "image-update"),
                ("Gitbot-Target", image),
                ("Gitbot-From", old),
                ("Gitbot-To", new),
            ),
        )

    def step(self, at: datetime, old: int, new: int, canary: str = "podinfo-rollout") -> CommitInfo:
        return self.add(
            at,
            f"gitbot(staging): {canary} canary {old}% -> {new}%",
            (
                ("Gitbot-Policy", "staging"),
                ("Gitbot-Action", "canary-step"),
                ("Gitbot-Target", canary),
                ("Gitbot-From", str(old)),
                ("Gitbot-To", str(new)),
            ),
        )

    def revert(self, at: datetime, victim: CommitInfo) -> CommitInfo:
        return self.add(at, f'Revert "{victim.subject}"', body=f"This reverts commit {victim.sha}.\n", author=ALICE)

    def gate(self, now: datetime, *, soak: timedelta = SOAK, canary: CanaryGate | None = None) -> Gate:
        history = read_history(list(reversed(self.commits)), "staging")
        return judge_gate("staging/podinfo", "staging", "podinfo", history, now, soak=soak, canary=canary)


def test_a_tag_still_running_passes_once_it_has_soaked_and_says_since_when() -> None:
    branch = Branch()
    branch.add(T0 - timedelta(days=1), "seed")
    landed = branch.update(T0, "0.1.2", "0.1.3")

    early = branch.gate(T0 + timedelta(minutes=50))
    late = branch.gate(T0 + timedelta(hours=5))

    assert not early.allows("0.1.3")
    assert early.why("0.1.3") == "soak left 1h10m in staging (there since 2026-12-01 10:02Z, needs 2h)"
    assert late.allows("0.1.3")
    assert late.why("0.1.3") == (
        f"0.1.3 has run in staging since 2026-12-01 10:02Z (5h), no rollback (commit {landed.sha[:7]})"
    )
    assert late.evidence("0.1.3").startswith("Promotion gate staging/podinfo: 0.1.3 has run")


def test_a_tag_replaced_after_its_soak_passes_and_one_replaced_before_never_does() -> None:
    branch = Branch()
    branch.update(T0, "0.1.1", "0.1.2")
    branch.update(T0 + timedelta(hours=3), "0.1.2", "0.1.3")
    branch.update(T0 + timedelta(hours=3, minutes=5), "0.1.3", "0.1.4")

    gate = branch.gate(T0 + timedelta(days=2))

    assert gate.allows("0.1.2")
    assert "ran in staging from 2026-12-01 10:02Z for 3h until a newer tag replaced it" in gate.why("0.1.2")
    assert not gate.allows("0.1.3")
    assert gate.why("0.1.3") == "ran in staging only 5m (needs 2h) before 0.1.4 replaced it"
    assert gate.allows("0.1.4")


def test_a_tag_reverted_in_the_earlier_environment_is_held_until_the_revert_is_reverted() -> None:
    branch = Branch()
    branch.update(T0, "0.1.2", "0.1.3")
    bad = branch.update(T0 + timedelta(minutes=10), "0.1.3", "0.1.4")
    revert = branch.revert(T0 + timedelta(hours=1), bad)

    gate = branch.gate(T0 + timedelta(days=1))

    assert not gate.allows("0.1.4")
    assert gate.why("0.1.4").startswith(f"rolled back in staging: reverted by {revert.sha[:7]} (Alice)")
    # The revert gave 0.1.3 back: it ran on, and has soaked.
    assert gate.allows("0.1.3")

    branch.revert(T0 + timedelta(hours=2), revert)
    lifted = branch.gate(T0 + timedelta(days=1))
    assert lifted.allows("0.1.4")


def test_a_canary_rollback_there_quarantines_the_tag_for_the_gate_too() -> None:
    branch = Branch()
    branch.update(T0, "0.2.0", "0.2.1")
    step = branch.step(T0 + timedelta(minutes=5), 0, 10)
    branch.add(
        T0 + timedelta(minutes=20),
        "gitbot(staging): roll back podinfo-rollout 10% -> 0%",
        (
            ("Gitbot-Policy", "staging"),
            ("Gitbot-Action", "rollback"),
            ("Gitbot-Target", "podinfo-rollout"),
            ("Gitbot-From", "10"),
            ("Gitbot-To", "0"),
            ("Gitbot-Quarantine", "podinfo=0.2.1"),
        ),
        body=f"This reverts commit {step.sha}.\n",
    )

    gate = branch.gate(T0 + timedelta(days=1))

    assert not gate.allows("0.2.1")
    assert gate.why("0.2.1").startswith("rolled back in staging: rolled back by")


def test_a_tag_the_earlier_environment_never_ran_is_not_yet_there() -> None:
    branch = Branch()
    branch.update(T0, "0.1.2", "0.1.3")
    branch.update(T0, "0.9.0", "0.9.1", image="redis")
    branch.update(T0, "0.1.3", "0.1.7", policy="other")

    gate = branch.gate(T0 + timedelta(days=1))

    for tag in ("0.1.7", "0.9.1", "0.1.5"):
        assert not gate.allows(tag), tag
        assert gate.why(tag) == "not yet in staging"


def test_a_canary_there_must_have_completed_its_steps_for_the_tag() -> None:
    canary = CanaryGate("podinfo-rollout", 100)
    branch = Branch()
    branch.update(T0 - timedelta(days=1), "0.2.0", "0.2.1")
    branch.step(T0 - timedelta(hours=20), 0, 10)
    branch.step(T0 - timedelta(hours=19), 10, 100)  # the older tag's rollout does not count for the new one
    branch.update(T0, "0.2.1", "0.2.2")
    now = T0 + timedelta(hours=5)

    assert branch.gate(now, canary=canary).why("0.2.2") == "canary podinfo-rollout in staging has not judged it yet"
    branch.step(T0 + timedelta(minutes=10), 0, 10)
    branch.step(T0 + timedelta(minutes=20), 10, 60)
    held = branch.gate(now, canary=canary)
    assert not held.allows("0.2.2")
    assert held.why("0.2.2") == "canary podinfo-rollout in staging is at 60%, its rollout not complete"
    done = branch.step(T0 + timedelta(minutes=30), 60, 100)
    passed = branch.gate(now, canary=canary)
    assert passed.allows("0.2.2")
    assert passed.why("0.2.2").endswith(f", canary podinfo-rollout completed its steps (commit {done.sha[:7]})")
    assert passed.allows("0.2.1")


def test_landing_time_is_the_merge_that_brought_the_tag_not_the_commit_date() -> None:
    branch = Branch()
    base = branch.add(T0 - timedelta(days=3), "seed")
    # A pull request's commit made three days ago, merged an hour ago.
    proposed = branch.update(T0 - timedelta(days=3), "0.1.2", "0.1.3")
    branch.commits.pop()
    proposed = CommitInfo(
        proposed.sha, (base.sha,), BOT, proposed.committed_at, proposed.subject, "", proposed.trailers
    )
    branch.commits.append(proposed)
    branch.add(T0 - timedelta(days=1), "docs", parents=(base.sha,), author=ALICE)
    branch.add(T0, "Merge pull request #7", parents=(branch.commits[-1].sha, proposed.sha), author=ALICE)

    gate = branch.gate(T0 + timedelta(hours=1))

    assert not gate.allows("0.1.3")
    assert gate.why("0.1.3").startswith("soak left 1h in staging (there since 2026-12-01 10:02Z")


def test_an_unreadable_environment_holds_every_tag_and_keeps_what_runs() -> None:
    gate = unreadable_gate("staging/podinfo", "staging", "branch staging: authentication failed")

    assert gate.admit(["0.1.4", "0.1.3", "0.1.2"], keep={"0.1.2"}) == ["0.1.2"]
    assert gate.why("0.1.4") == "staging cannot be read (branch staging: authentication failed); holding"
    assert held_back(gate, ["0.1.4", "0.1.3", "0.1.2"], "0.1.2") == [
        ("0.1.4", gate.why("0.1.4")),
        ("0.1.3", gate.why("0.1.3")),
    ]


def test_admit_keeps_the_running_tag_and_held_back_lists_newer_tags_with_why() -> None:
    branch = Branch()
    branch.update(T0, "0.1.1", "0.1.2")
    branch.update(T0 + timedelta(hours=4), "0.1.2", "0.1.3")
    gate = branch.gate(T0 + timedelta(hours=5))

    assert gate.admit(["0.1.4", "0.1.3", "0.1.2", "0.1.1"], keep={"0.1.1"}) == ["0.1.2", "0.1.1"]
    assert held_back(gate, ["0.1.4", "0.1.3", "0.1.2", "0.1.1"], "0.1.2") == [
        ("0.1.4", "not yet in staging"),
        ("0.1.3", "soak left 1h in staging (there since 2026-12-01 14:02Z, needs 2h)"),
    ]


APPS = "clusters/production/podinfo.yaml"


def canary_running(tag: str) -> str:
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: podinfo-canary, namespace: test}\n"
        "spec:\n  template:\n    spec:\n      containers:\n        - name: podinfod\n"
        f"          image: ghcr.io/stefanprodan/podinfo:{tag}\n"
    )


def plan_canary_image(running: str, gate: Gate) -> list[Plan]:
    policy = load_policy(REPO / "policies" / "production.yaml")
    policy = policy.model_copy(
        update={"spec": policy.spec.model_copy(update={"images": policy.spec.images[1:], "canaries": ()})}
    )
    texts = {APPS: canary_running(running)}
    tags = {"podinfo-canary": ("0.2.0", "0.2.1", "0.2.2", "0.2.3")}
    return plan_images(
        policy,
        scan_text(APPS, texts[APPS]),
        texts,
        tags,
        History("production"),
        chain=True,
        gates={"podinfo-canary": gate},
    )


def test_the_planner_takes_the_newest_tag_the_gate_passes_and_says_why() -> None:
    gate = Gate(
        "staging/podinfo",
        "staging",
        {
            "0.2.1": TagVerdict("0.2.1", True, "0.2.1 has run in staging since 2026-12-01 10:02Z (5h), no rollback"),
            "0.2.2": TagVerdict("0.2.2", False, "soak left 1h in staging"),
        },
    )

    (plan,) = plan_canary_image("0.2.0", gate)

    assert [change.new.rsplit(":", 1)[1] for change in plan.changes] == ["0.2.1"]
    assert "Promotion gate staging/podinfo: 0.2.1 has run in staging since 2026-12-01 10:02Z (5h)" in plan.evidence
    assert "Promotion gate staging/podinfo:" in plan.body


def test_a_gate_never_moves_a_target_below_the_tag_it_runs() -> None:
    passed = Gate("staging/podinfo", "staging", {"0.2.1": TagVerdict("0.2.1", True, "ran")})

    assert plan_canary_image("0.2.2", passed) == []
    assert plan_canary_image("0.2.0", unreadable_gate("staging/podinfo", "staging", "gone")) == []
