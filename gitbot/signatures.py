"""Cosign signatures of container images: the public key, the simple-signing payload and the check.

Owns what makes a signature valid for gitbot: an ECDSA P-256 signature (SHA-256, DER, base64) over the
payload bytes, made by the configured public key, whose payload is a `cosign container image signature`
naming exactly the manifest digest being judged. Pure: the signatures are fetched by the registry adapter;
this module only reads a key's PEM text and judges bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias

from gitbot.domain import CosignSignature
from gitbot.errors import ConfigError

if TYPE_CHECKING:
    # The key type policies hold, named here so that only this module imports the cryptography package; it is
    # imported when a key is read or a signature checked, not by every cycle (~10 ms of start-up).
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    PublicKey: TypeAlias = EllipticCurvePublicKey

PAYLOAD_TYPE = "cosign container image signature"


def load_public_key(pem: bytes, *, where: str) -> PublicKey:
    """A cosign public key (PKIX PEM, ECDSA P-256); a ConfigError naming `where` otherwise."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError("is not a PEM public key (`-----BEGIN PUBLIC KEY-----`)", where=where) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError("is not an ECDSA P-256 public key, which cosign signs with", where=where)
    return key


def _payload_digest(payload: bytes) -> str | None:
    """The manifest digest a simple-signing payload names, or None when it is not a cosign image payload."""
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    critical = document.get("critical") if isinstance(document, dict) else None
    if not isinstance(critical, dict) or critical.get("type") != PAYLOAD_TYPE:
        return None
    image = critical.get("image")
    if not isinstance(image, dict):
        return None
    # The published examples spell the key with a capital D; cosign itself writes it in lower case.
    found = {str(k).lower(): v for k, v in image.items()}.get("docker-manifest-digest")
    return found if isinstance(found, str) else None


def _verifies(key: PublicKey, signature: CosignSignature) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        raw = base64.b64decode(signature.signature, validate=True)
        key.verify(raw, signature.payload, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def judge(signatures: Sequence[CosignSignature], digest: str, key: PublicKey) -> str | None:
    """None when one of `signatures` is valid under `key` for manifest `digest`; otherwise why not."""
    if not signatures:
        return "not signed (no cosign signature)"
    named_other = False
    for signature in signatures:
        if not _verifies(key, signature):
            continue
        if _payload_digest(signature.payload) == digest:
            return None
        named_other = True
    if named_other:
        return "signed for another image (the signed payload names a different digest)"
    return f"no valid signature under the key ({len(signatures)} signature(s) do not verify)"
