"""Fetch GitHub's OpenAPI description for the tests from its npm package, pinned and checked by digest.

`python -m tests.support.fetch_openapi` does nothing when `shared/github/api.github.com.json` is beside the
repository or the copy is already in `.test-inputs/`; otherwise it runs `npm pack @octokit/openapi@<version>`
in a temporary directory, takes `generated/api.github.com.json` (and the package's LICENSE) out of the
tarball, and keeps them only when the file's SHA-256 is the pinned one. It never fails the build: when it
cannot fetch, it says why in one line and the tests that need the description say what is missing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from tests.shared import FETCHED_OPENAPI, OPENAPI_SHA256, OPENAPI_VERSION, openapi_path

PACKAGE = f"@octokit/openapi@{OPENAPI_VERSION}"
MEMBER = "package/generated/api.github.com.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(target: Path = FETCHED_OPENAPI) -> str:
    """Fetch into `target`; a one-line account of what happened (raises RuntimeError when it cannot)."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"npm is not installed, so {PACKAGE} cannot be fetched")
    with tempfile.TemporaryDirectory() as tmp:
        packed = subprocess.run(
            [npm, "pack", "--silent", PACKAGE], cwd=tmp, capture_output=True, text=True, timeout=300, check=False
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if packed.returncode != 0 or len(tarballs) != 1:
            reason = (packed.stderr.strip().splitlines() or ["no tarball"])[-1]
            raise RuntimeError(f"npm pack {PACKAGE} failed: {reason}")
        with tarfile.open(tarballs[0]) as archive:
            out = Path(tmp) / "out"
            archive.extractall(
                out, members=[archive.getmember(MEMBER), archive.getmember("package/LICENSE")], filter="data"
            )
        extracted = out / MEMBER
        found = sha256(extracted)
        if found != OPENAPI_SHA256:
            raise RuntimeError(
                f"{PACKAGE}: api.github.com.json has sha256 {found}, expected {OPENAPI_SHA256}; not kept"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "package" / "LICENSE", target.parent / "LICENSE")
        shutil.move(str(extracted), target)
    return f"fetched GitHub's OpenAPI description ({PACKAGE}, sha256 checked) into {target}"


def main() -> int:
    present = openapi_path()
    if present.is_file() and (present != FETCHED_OPENAPI or sha256(present) == OPENAPI_SHA256):
        return 0
    try:
        print(f"test-inputs: {fetch()}")
    except (RuntimeError, OSError, subprocess.SubprocessError, tarfile.TarError, KeyError) as exc:
        print(f"test-inputs: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
