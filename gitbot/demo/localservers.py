"""Debian's `docker-registry` and `prometheus` run as child processes on free loopback ports.

Owns starting, feeding and stopping the two real servers a sandbox uses when the machine has them: a
registry with a temporary config (images pushed over plain HTTP: blob upload, then a manifest PUT per tag)
and a Prometheus over a data directory filled by `promtool tsdb create-blocks-from openmetrics` (fed again by
restarting it on a fresh data directory, since blocks go in before a server starts, not into a running one).
Every process it starts, it stops through its own handle. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import httpx

from gitbot.errors import GitbotError, MetricsError, RegistryError

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
PROMETHEUS_BINARY = Path("/usr/bin/prometheus")
PROMTOOL_BINARY = Path("/usr/bin/promtool")
_HINT = "the demo runs without it with `gitbot demo --builtin`"
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def registry_available() -> bool:
    return REGISTRY_BINARY.is_file()


def prometheus_available() -> bool:
    return PROMETHEUS_BINARY.is_file() and PROMTOOL_BINARY.is_file()


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _wait_http(
    url: str, process: subprocess.Popen[bytes], log: Path, what: str, error: type[GitbotError], timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise error(f"{what} exited at start-up: {tail[0][:200]}", where=str(log), hint=_HINT)
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise error(f"{what} did not answer on {url} within {timeout:.0f}s", where=str(log), hint=_HINT)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_image(client: httpx.Client, repository: str, tags: Iterable[str], *, content: str) -> str:
    """Push one tiny image to `repository` through `client` (based at the registry) under every tag in `tags`.

    Without Docker: the config and layer blobs are uploaded once (POST, then PUT with the digest), then the
    schema 2 manifest is PUT once per tag. Returns the manifest digest.
    """
    layer = gzip.compress(content.encode(), mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [_digest(gzip.decompress(layer))]},
        },
        sort_keys=True,
    ).encode()
    where = f"{client.base_url.host}:{client.base_url.port}/{repository}"
    for blob in (config, layer):
        started = client.post(f"/v2/{repository}/blobs/uploads/")
        if started.status_code != 202:
            raise RegistryError(f"blob upload to {where} refused: HTTP {started.status_code}")
        location = started.headers["Location"]
        separator = "&" if "?" in location else "?"
        done = client.put(
            f"{location}{separator}digest={_digest(blob)}",
            content=blob,
            headers={"Content-Type": "application/octet-stream"},
        )
        if done.status_code != 201:
            raise RegistryError(f"blob upload to {where} failed: HTTP {done.status_code}")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": _digest(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": _digest(layer),
                }
            ],
        }
    ).encode()
    for tag in tags:
        put = client.put(f"/v2/{repository}/manifests/{tag}", content=manifest, headers={"Content-Type": MANIFEST_TYPE})
        if put.status_code != 201:
            raise RegistryError(f"manifest PUT {where}:{tag} failed: HTTP {put.status_code}")
    return _digest(manifest)


class LocalRegistry:
    """A `docker-registry` (distribution 2.x) on a free loopback port with storage under `work_dir`."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._client = httpx.Client(base_url=f"http://{self.host}", timeout=10, trust_env=False)

    def start(self) -> LocalRegistry:
        storage = self.work_dir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {storage}\n  delete:\n    enabled: true\nhttp:\n  addr: {self.host}\n",
            encoding="utf-8",
        )
        log = self.work_dir / "registry.log"
        with log.open("wb") as out:
            self._process = subprocess.Popen(
                [str(REGISTRY_BINARY), "serve", str(config)], stdout=out, stderr=subprocess.STDOUT, cwd=self.work_dir
            )
        try:
            _wait_http(f"http://{self.host}/v2/", self._process, log, "docker-registry", RegistryError)
        except BaseException:
            self.stop()
            raise
        return self

    def push(self, repository: str, tag: str) -> str:
        """Push a tiny image to `repository` (path on this registry) as `tag`; return the manifest digest."""
        return push_image(self._client, repository, [tag], content=f"podinfo {tag}\n")

    def stop(self) -> None:
        self._client.close()
        _stop(self._process)


# The counter family is declared without `_total`: promtool drops the samples otherwise.
_ISTIO_FAMILIES = (
    ("istio_requests", "counter", ("istio_requests_total",)),
    (
        "istio_request_duration_milliseconds",
        "histogram",
        (
            "istio_request_duration_milliseconds_bucket",
            "istio_request_duration_milliseconds_count",
            "istio_request_duration_milliseconds_sum",
        ),
    ),
)


def istio_openmetrics(series: Iterable[tuple[str, str, Sequence[tuple[float, float]]]]) -> str:
    """Istio's request counter and latency histogram as one OpenMetrics exposition for promtool backfill.

    `series` yields (metric name, rendered `{label="value",...}`, points); each series' points must be
    ascending, timestamps in seconds. The families are declared once, each series written contiguously.
    """
    items = list(series)
    lines: list[str] = []
    for family, kind, names in _ISTIO_FAMILIES:
        lines.append(f"# TYPE {family} {kind}")
        for name, labels, points in items:
            if name in names:
                lines += [f"{name}{labels} {value:.6f} {int(at)}" for at, value in points]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


class LocalPrometheus:
    """A `prometheus` on a free loopback port over samples given as OpenMetrics text.

    `load(text)` backfills `text` into a new data directory and (re)starts the server on it; the previous
    process and data directory are removed. Sample timestamps are in seconds and must lie in the past.
    """

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._generation = 0
        self.loads = 0

    def load(self, openmetrics: str) -> None:
        self._generation += 1
        data = self.work_dir / f"data-{self._generation}"
        source = self.work_dir / "samples.om.txt"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        source.write_text(openmetrics, encoding="utf-8")
        done = subprocess.run(
            [str(PROMTOOL_BINARY), "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if done.returncode != 0:
            detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise MetricsError(f"promtool could not backfill the samples: {detail[:200]}", where=str(source))
        _stop(self._process)
        self._process = None
        previous = self.work_dir / f"data-{self._generation - 1}"
        shutil.rmtree(previous, ignore_errors=True)
        config = self.work_dir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n", encoding="utf-8")
        log = self.work_dir / "prometheus.log"
        with log.open("wb") as out:
            self._process = subprocess.Popen(
                [
                    str(PROMETHEUS_BINARY),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=3650d",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
            )
        try:
            _wait_http(f"{self.url}/-/ready", self._process, log, "prometheus", MetricsError)
        except BaseException:
            self.stop()
            raise
        self.loads += 1

    def stop(self) -> None:
        _stop(self._process)
        self._process = None
