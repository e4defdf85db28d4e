"""The walk over matching tags by release age and signature (`gitbot.candidates`) and the cosign check
(`gitbot.signatures`): newest first, stopping at the first tag that qualifies or at the running tag."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gitbot.candidates import MAX_CONSIDERED, Gate, vet, why_not
from gitbot.domain import CosignSignature, TagFacts
from gitbot.errors import ConfigError
from gitbot.signatures import judge, load_public_key
from tests.support.images import new_key, public_pem, signature_tag, simple_signing_payload

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def signed(key: ec.EllipticCurvePrivateKey, named: str) -> CosignSignature:
    payload = simple_signing_payload("registry.example/app", named)
    return CosignSignature(payload, base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode())


class Registry:
    """Tag facts by tag; records which tags were asked about."""

    def __init__(self, facts: dict[str, TagFacts]) -> None:
        self.facts = facts
        self.asked: list[str] = []

    def __call__(self, tag: str) -> TagFacts:
        self.asked.append(tag)
        return self.facts[tag]


def test_min_age_skips_young_tags_and_stops_at_the_first_old_enough() -> None:
    reg = Registry(
        {
            "1.3": TagFacts(digest(3), NOW - timedelta(minutes=10)),
            "1.2": TagFacts(digest(2), NOW - timedelta(hours=2)),
            "1.1": TagFacts(digest(1), NOW - timedelta(days=2)),
        }
    )
    vetting = vet(["1.3", "1.2", "1.1"], Gate(min_age=timedelta(hours=1)), reg, NOW)
    assert (vetting.chosen, vetting.digest) == ("1.2", digest(2))
    assert vetting.skipped == (("1.3", "created 10m ago, younger than minAge 1h"),)
    assert reg.asked == ["1.3", "1.2"]  # 1.1 never asked about


def test_a_tag_without_a_creation_time_is_no_candidate_under_min_age() -> None:
    facts = TagFacts(digest(1), None)
    assert why_not(facts, Gate(min_age=timedelta(hours=1)), NOW) == "its image has no creation time, which minAge needs"
    assert why_not(facts, Gate(pin=True), NOW) is None


def test_the_walk_stops_at_the_running_tag_even_when_it_does_not_qualify() -> None:
    reg = Registry({tag: TagFacts(digest(i), NOW) for i, tag in enumerate(["1.3", "1.2", "1.1", "1.0"])})
    vetting = vet(["1.3", "1.2", "1.1", "1.0"], Gate(min_age=timedelta(hours=1)), reg, NOW, running={"1.2"})
    assert vetting.chosen is None
    assert reg.asked == ["1.3", "1.2"]


def test_the_walk_is_capped() -> None:
    tags = [f"1.{i}" for i in range(100, 0, -1)]
    reg = Registry({tag: TagFacts(digest(1), NOW) for tag in tags})
    vetting = vet(tags, Gate(min_age=timedelta(hours=1)), reg, NOW)
    assert vetting.chosen is None and len(reg.asked) == MAX_CONSIDERED
    assert "not inspected" in vetting.note


def test_signatures_choose_the_newest_signed_tag() -> None:
    key = new_key()
    public = load_public_key(public_pem(key), where="policy.yaml:9 spec.images[0].verify.cosign.publicKeyFile")
    reg = Registry(
        {
            "2.1": TagFacts(digest(21)),
            "2.0": TagFacts(digest(20), signatures=(signed(new_key(), digest(20)),)),
            "1.9": TagFacts(digest(19), signatures=(signed(key, digest(19)),)),
        }
    )
    vetting = vet(["2.1", "2.0", "1.9"], Gate(key=public), reg, NOW)
    assert vetting.chosen == "1.9"
    assert [tag for tag, _ in vetting.skipped] == ["2.1", "2.0"]
    assert vetting.skipped[0][1] == "not signed (no cosign signature)"
    assert "do not verify" in vetting.skipped[1][1]


def test_a_valid_signature_for_another_digest_does_not_count() -> None:
    key = new_key()
    public = load_public_key(public_pem(key), where="x")
    assert "another image" in str(judge((signed(key, digest(1)),), digest(2), public))
    assert judge((signed(key, digest(2)),), digest(2), public) is None


def test_a_tampered_payload_or_garbage_signature_does_not_verify() -> None:
    key = new_key()
    public = load_public_key(public_pem(key), where="x")
    good = signed(key, digest(5))
    tampered = CosignSignature(good.payload.replace(b"registry.example", b"evil.example"), good.signature)
    assert judge((tampered,), digest(5), public) is not None
    assert judge((CosignSignature(good.payload, "not base64!"),), digest(5), public) is not None


def test_keys_other_than_p256_public_keys_are_refused_at_their_place() -> None:
    where = "policies/p.yaml:12 spec.images[0].verify.cosign.publicKeyFile"
    with pytest.raises(ConfigError, match="not a PEM public key") as caught:
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", where=where)
    assert "p.yaml:12" in str(caught.value)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    from cryptography.hazmat.primitives import serialization

    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ConfigError, match="not an ECDSA P-256"):
        load_public_key(pem, where=where)


def test_signature_tag_follows_cosign_naming() -> None:
    assert signature_tag("sha256:" + "ab" * 32) == "sha256-" + "ab" * 32 + ".sig"
