"""Pushing images with chosen creation times, multi-platform indexes and cosign signatures to a real
`docker-registry`, without Docker: blobs by POST + PUT, manifests by PUT.

Signatures follow cosign's published format: a simple-signing payload blob naming the manifest digest,
an ECDSA P-256 (SHA-256, DER, base64) signature over it in the layer annotation
`dev.cosignproject.cosign/signature`, in an OCI manifest under the tag `sha256-<hex>.sig`. They are made here
because Debian's `skopeo` 1.9 is built with sigstore signing disabled (`copy --sign-by-sigstore-private-key`
fails with "sigstore disabled"), and cosign itself is not packaged.
"""

from __future__ import annotations

import base64
import hashlib
import json

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def signature_tag(digest: str) -> str:
    """The tag cosign stores the signatures of manifest `digest` under: `sha256:ab..` -> `sha256-ab...sig`."""
    return digest.replace(":", "-") + ".sig"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    started = client.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    separator = "&" if "?" in location else "?"
    digest = digest_of(data)
    done = client.put(
        f"{location}{separator}digest={digest}", content=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert done.status_code == 201, done.text
    return digest


def push_manifest(client: httpx.Client, repo: str, reference: str, document: dict[str, object]) -> str:
    """PUT `document` (its own `mediaType`) as `repo:reference`; the digest the registry answers."""
    body = json.dumps(document, sort_keys=True).encode()
    answer = client.put(
        f"/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": str(document["mediaType"])}
    )
    assert answer.status_code == 201, answer.text
    digest = answer.headers["Docker-Content-Digest"]
    assert digest == digest_of(body)
    return digest


def push_image(
    client: httpx.Client, repo: str, tag: str, *, created: str | None, content: str = "", arch: str = "amd64"
) -> str:
    """One image with config `created` (None: no timestamp) under `tag`; returns its manifest digest."""
    layer = f"layer of {repo}:{tag} {content}".encode()
    config: dict[str, object] = {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    if created is not None:
        config["created"] = created
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_digest = push_blob(client, repo, config_bytes)
    layer_digest = push_blob(client, repo, layer)
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": len(config_bytes),
            "digest": config_digest,
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": len(layer),
                "digest": layer_digest,
            }
        ],
    }
    return push_manifest(client, repo, tag, manifest)


def push_index(client: httpx.Client, repo: str, tag: str, platforms: dict[str, str | None]) -> str:
    """A multi-platform index under `tag` over one image per architecture (arch -> created)."""
    entries = []
    for arch, created in platforms.items():
        digest = push_image(client, repo, f"{tag}-{arch}", created=created, content=arch, arch=arch)
        size = len(client.get(f"/v2/{repo}/manifests/{digest}", headers={"Accept": DOCKER_MANIFEST}).content)
        entries.append(
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": digest,
                "size": size,
                "platform": {"os": "linux", "architecture": arch},
            }
        )
    return push_manifest(client, repo, tag, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})


def simple_signing_payload(reference: str, digest: str) -> bytes:
    document = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def sign(
    client: httpx.Client,
    repo: str,
    digest: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    payload_digest: str | None = None,
) -> str:
    """Store a cosign signature of manifest `digest` under `sha256-<hex>.sig` (of `payload_digest` when given:
    a signature made for another image, copied over); returns the signature tag."""
    payload = simple_signing_payload(f"{client.base_url.host}/{repo}", payload_digest or digest)
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    payload_blob = push_blob(client, repo, payload)
    config = b"{}"
    config_digest = push_blob(client, repo, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": len(config),
            "digest": config_digest,
        },
        "layers": [
            {
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "size": len(payload),
                "digest": payload_blob,
                "annotations": {"dev.cosignproject.cosign/signature": signature},
            }
        ],
    }
    tag = signature_tag(digest)
    push_manifest(client, repo, tag, manifest)
    return tag


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
