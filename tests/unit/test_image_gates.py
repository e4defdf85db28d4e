"""Image policy fields `minAge`, `digest: pin` and `verify.cosign`: their errors at the policy's line, the key
they name, and the plans they make (tags written with their digest, a moved tag pinned again as its own
change naming both digests, Flux `:digest` markers)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gitbot.candidates import Vetting
from gitbot.config import load_policy
from gitbot.errors import ConfigError
from gitbot.history import History
from gitbot.manifests import scan_text
from gitbot.planner import plan_images
from gitbot.tagfacts import image_gate
from tests.support.images import new_key, public_pem

REPO = Path(__file__).resolve().parents[2]
APPS = "clusters/production/podinfo.yaml"
OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64
GA_FIELDS = '      filter: "0.1.*"\n'


def policy_with(tmp_path: Path, fields: str) -> Path:
    """The shipped production policy with `fields` (indented lines) added to the GA image."""
    text = (REPO / "policies" / "production.yaml").read_text(encoding="utf-8")
    assert GA_FIELDS in text
    path = tmp_path / "production.yaml"
    path.write_text(text.replace(GA_FIELDS, GA_FIELDS + fields, 1), encoding="utf-8")
    return path


def ga_line(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_the_new_fields_load(tmp_path: Path) -> None:
    (tmp_path / "cosign.pub").write_bytes(public_pem(new_key()))
    path = policy_with(
        tmp_path, "      minAge: 1h30m\n      digest: pin\n      verify: {cosign: {publicKeyFile: cosign.pub}}\n"
    )
    policy = load_policy(path)
    image = policy.spec.images[0]
    assert image.min_age == timedelta(hours=1, minutes=30)
    assert image.digest == "pin"
    gate = image_gate(policy, 0)
    assert gate.pin and gate.key is not None and gate.min_age == timedelta(hours=1, minutes=30)
    assert not image_gate(policy, 1).needs_facts


@pytest.mark.parametrize(
    ("fields", "needle", "message"),
    [
        ("      minAge: soon\n", "minAge", "expected a duration"),
        ("      digest: always\n", "digest", "must be one of"),
        ("      verify: {cosign: {}}\n", "verify", "exactly one of publicKeyFile and publicKeyEnv"),
        ("      verify: {cosign: {publicKeyEnv: 'MFkwEwYH=='}}\n", "verify", "name of an environment variable"),
        ("      verify: {notary: {}}\n", "verify", r"verify.notary: is not a known field \(known: cosign\)"),
    ],
)
def test_mistakes_name_their_line(tmp_path: Path, fields: str, needle: str, message: str) -> None:
    path = policy_with(tmp_path, fields)
    with pytest.raises(ConfigError, match=message) as caught:
        load_policy(path)
    assert f"{path}:{ga_line(path, needle)}" in str(caught.value)


def test_a_key_file_that_is_missing_or_no_key_names_its_line(tmp_path: Path) -> None:
    path = policy_with(tmp_path, "      verify:\n        cosign: {publicKeyFile: missing.pub}\n")
    with pytest.raises(ConfigError, match="cannot read the cosign public key") as caught:
        load_policy(path)
    assert f"{path}:{ga_line(path, 'publicKeyFile')}: spec.images[0].verify.cosign.publicKeyFile" in str(caught.value)
    (tmp_path / "missing.pub").write_text("not a key\n")
    with pytest.raises(ConfigError, match="not a PEM public key") as caught:
        load_policy(path)
    assert f"{path}:{ga_line(path, 'publicKeyFile')}" in str(caught.value)


def test_a_key_from_the_environment(tmp_path: Path) -> None:
    policy = load_policy(policy_with(tmp_path, "      verify: {cosign: {publicKeyEnv: COSIGN_PUB}}\n"))
    assert image_gate(policy, 0, {"COSIGN_PUB": public_pem(new_key()).decode()}).key is not None
    with pytest.raises(ConfigError, match="COSIGN_PUB is not set"):
        image_gate(policy, 0, {})


def deployment(image: str, marker: str = "") -> str:
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: podinfo-ga, namespace: test}\n"
        "spec:\n  template:\n    spec:\n      containers:\n        - name: podinfod\n"
        f"          image: {image}{marker}\n"
    )


def ga_only_policy(tmp_path: Path, fields: str, targets: str) -> Path:
    """A policy with the GA image alone (with `fields`), bound by `targets` (indented lines, or none)."""
    text = (REPO / "policies" / "production.yaml").read_text(encoding="utf-8").split("  images:")[0]
    path = tmp_path / "production.yaml"
    image = "    - name: podinfo-ga\n      repository: ghcr.io/stefanprodan/podinfo\n" + GA_FIELDS
    path.write_text(text + "  images:\n" + image + fields + targets, encoding="utf-8")
    return path


GA_TARGET = "      targets: [{resource: Deployment/test/podinfo-ga, container: podinfod}]\n"


def plan(
    tmp_path: Path, text: str, vetting: Vetting, fields: str = "      digest: pin\n", targets: str = GA_TARGET
) -> list[tuple[str, str]]:
    policy = load_policy(ga_only_policy(tmp_path, fields, targets))
    plans = plan_images(
        policy,
        scan_text(APPS, text),
        {APPS: text},
        {"podinfo-ga": ("0.1.1", "0.1.2")},
        History("production"),
        chain=False,
        vetted={"podinfo-ga": vetting},
    )
    return [(p.subject, dict(p.files)[APPS]) for p in plans]


def test_a_tag_move_writes_the_tag_with_its_digest(tmp_path: Path) -> None:
    [(subject, text)] = plan(tmp_path, deployment("ghcr.io/stefanprodan/podinfo:0.1.1"), Vetting("0.1.2", NEW))
    assert subject == "gitbot(production): podinfo-ga 0.1.1 -> 0.1.2"
    assert f"image: ghcr.io/stefanprodan/podinfo:0.1.2@{NEW}\n" in text


def test_the_vetted_tag_is_the_one_proposed(tmp_path: Path) -> None:
    vetting = Vetting("0.1.1", OLD, skipped=(("0.1.2", "not signed (no cosign signature)"),))
    assert plan(tmp_path, deployment(f"ghcr.io/stefanprodan/podinfo:0.1.1@{OLD}"), vetting) == []
    assert plan(tmp_path, deployment("ghcr.io/stefanprodan/podinfo:0.1.1"), Vetting(None), fields="") == []


def test_a_tag_whose_digest_changed_is_pinned_again_as_its_own_change(tmp_path: Path) -> None:
    [(subject, text)] = plan(tmp_path, deployment(f"ghcr.io/stefanprodan/podinfo:0.1.2@{OLD}"), Vetting("0.1.2", NEW))
    assert subject == f"gitbot(production): podinfo-ga 0.1.2@{OLD} -> 0.1.2@{NEW}"
    assert f"image: ghcr.io/stefanprodan/podinfo:0.1.2@{NEW}\n" in text
    assert plan(tmp_path, deployment(f"ghcr.io/stefanprodan/podinfo:0.1.2@{NEW}"), Vetting("0.1.2", NEW)) == []


def test_a_flux_digest_marker_follows_the_tag(tmp_path: Path) -> None:
    text = (
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n"
        "  - name: podinfo\n"
        '    newTag: 0.1.1 # {"$imagepolicy": "flux-system:podinfo-ga:tag"}\n'
        f'    digest: {OLD} # {{"$imagepolicy": "flux-system:podinfo-ga:digest"}}\n'
    )
    [(_subject, edited)] = plan(tmp_path, text, Vetting("0.1.2", NEW), targets="")
    assert "newTag: 0.1.2 #" in edited and f"digest: {NEW} #" in edited
