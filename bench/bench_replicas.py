"""Many policies, many replicas, against a real `docker-registry` and a git repository on disk.

1. One daemon (in process: the service, the cycle runner and the shared registry clients of `gitbot run`)
   with 500 policies over one repository that names 50 images: cycles per minute, registry lookups per cycle
   and per image, and the most cycles seen running at once.
2. Five `gitbot run` processes on the same 10 commit-mode policies while two newer tags are pushed:
   changes delivered, and duplicates found (a step committed twice, a tag moved back, a change reported by
   two replicas); duplicates must be 0.

BENCH_SECONDS sets how long the single daemon runs (default 30).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from gitbot.commands.compose import SharedAdapters
from gitbot.commands.runner import CycleRunner
from gitbot.config import Policy, load_policies
from gitbot.logs import SecretMasker
from gitbot.service import CycleSummary, Service, ServiceMetrics
from tests.support.registry import free_port, push_tags, start_registry

ROOT = Path(__file__).resolve().parents[1]
POLICIES = 500
IMAGES = 50
IMAGES_PER_POLICY = 5
REPLICAS = 5
REPLICA_POLICIES = 10
SUBJECT = re.compile(r"^gitbot\((?P<policy>[^)]+)\): (?P<image>\S+) (?P<old>\S+) -> (?P<new>\S+)$")


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "seed",
        "GIT_AUTHOR_EMAIL": "seed@example.test",
        "GIT_COMMITTER_NAME": "seed",
        "GIT_COMMITTER_EMAIL": "seed@example.test",
    }
    done = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return done.stdout


def make_repo(base: Path, files: dict[str, str]) -> Path:
    bare = base / "config.git"
    git(base, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    work = base / "seed"
    git(base, "clone", "--quiet", str(bare), str(work))
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "Initial configuration")
    git(work, "push", "--quiet", "origin", "HEAD:main")
    return bare


def deployment(namespace: str, images: list[tuple[str, str]]) -> str:
    containers = "".join(f"        - name: {name}\n          image: {image}\n" for name, image in images)
    return (
        "apiVersion: apps/v1\nkind: Deployment\n"
        f"metadata: {{name: app, namespace: {namespace}}}\n"
        f"spec:\n  template:\n    spec:\n      containers:\n{containers}"
    )


def policy(name: str, repo: Path, images: list[tuple[str, str]], interval: str) -> str:
    entries = "".join(
        f"    - {{name: {image}, repository: {json.dumps(repository)}, filter: '1.0.*',\n"
        f"       targets: [{{resource: Deployment/{name}/app, container: {image}}}]}}\n"
        for image, repository in images
    )
    return (
        "apiVersion: gitbot.dev/v1alpha1\nkind: Policy\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        f"  git: {{url: {json.dumps(str(repo))}, branch: main, paths: [clusters/{name}],\n"
        "        author: {name: gitbot, email: gitbot@example.test}, maxPushAttempts: 5}\n"
        f"  schedule: {{interval: {interval}}}\n"
        f"  images:\n{entries}"
    )


def one_daemon(base: Path, registry_url: str, registry_host: str) -> None:
    images = [f"acme/image-{i:02d}" for i in range(IMAGES)]
    started = time.perf_counter()
    for image in images:
        push_tags(registry_url, image, ["1.0.0", "1.0.1"])
    print(f"pushed {IMAGES} images: {time.perf_counter() - started:.1f} s")
    files, texts = {}, {}
    for i in range(POLICIES):
        name = f"team-{i:03d}"
        mine = [images[(i + k * 7) % IMAGES] for k in range(IMAGES_PER_POLICY)]
        named = [(path.rsplit("/", 1)[1], f"{registry_host}/{path}") for path in mine]
        files[f"clusters/{name}/app.yaml"] = deployment(name, [(n, f"{r}:1.0.1") for n, r in named])
        texts[name] = named
    repo = make_repo(base, files)
    policies_dir = base / "policies"
    policies_dir.mkdir()
    for name, named in texts.items():
        (policies_dir / f"{name}.yaml").write_text(policy(name, repo, named, "1m"))
    policies = load_policies(policies_dir)
    env = {**os.environ, "GITBOT_CACHE_DIR": str(base / "cache"), "HOME": str(base)}
    shared = SharedAdapters()
    stop = threading.Event()
    metrics = ServiceMetrics()
    runner = CycleRunner(
        policies, env=env, stop=stop, masker=SecretMasker(), record_request=metrics.api_request, build=shared.build_deps
    )
    lock = threading.Lock()
    running = [0]
    peak = [0]
    done: list[CycleSummary] = []

    def counted(p: Policy) -> CycleSummary:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            summary = runner(p)
        finally:
            with lock:
                running[0] -= 1
        with lock:
            done.append(summary)
        return summary

    seconds = float(os.environ.get("BENCH_SECONDS", "30"))
    service = Service(policies, counted, port=0, host="127.0.0.1", jitter=5)
    started = time.perf_counter()
    service.start()
    time.sleep(seconds)
    service.stop()
    elapsed = time.perf_counter() - started
    lookups = sum(sum(client.requests.values()) for r in shared.registries.values() for client in r.clients.values())
    outcomes = Counter(s.outcome for s in done)
    print(
        f"{POLICIES} policies over {IMAGES} images ({IMAGES_PER_POLICY} each), one daemon, "
        f"--max-concurrent-cycles {service.max_concurrent_cycles}, {elapsed:.0f} s"
    )
    print(f"  cycles: {len(done)} ({dict(outcomes)}), {len(done) / elapsed * 60:.0f} cycles per minute")
    print(f"  most cycles at once: {peak[0]}")
    print(
        f"  registry requests: {lookups}, {lookups / max(len(done), 1):.3f} per cycle, "
        f"{lookups / IMAGES:.2f} per image (the tag cache window is 30 s)"
    )
    print(f"  without sharing it would be {IMAGES_PER_POLICY} per cycle ({IMAGES_PER_POLICY * len(done)} in all)")
    for registry in shared.registries.values():
        registry.close()


def replicas(base: Path, registry_url: str, registry_host: str) -> None:
    image_path = "acme/replicated"
    repository = f"{registry_host}/{image_path}"
    push_tags(registry_url, image_path, ["1.0.0", "1.0.1"])
    names = [f"svc-{i:02d}" for i in range(REPLICA_POLICIES)]
    files = {f"clusters/{n}/app.yaml": deployment(n, [("app", f"{repository}:1.0.0")]) for n in names}
    repo = make_repo(base, files)
    policies_dir = base / "policies"
    policies_dir.mkdir()
    for n in names:
        (policies_dir / f"{n}.yaml").write_text(policy(n, repo, [("app", repository)], "1s"))
    processes: list[tuple[subprocess.Popen[bytes], Path]] = []
    for index in range(REPLICAS):
        log = base / f"replica-{index}.log"
        env = {**os.environ, "GITBOT_CACHE_DIR": str(base / f"cache-{index}"), "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "gitbot", "run", "--policies", str(policies_dir), "--port", str(free_port())]
        command += ["--host", "127.0.0.1", "--log-format", "json"]
        with log.open("wb") as err:
            processes.append((subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env), log))

    def at(tag: str) -> bool:
        text = git(base, "--git-dir", str(repo), "grep", "-h", "image:", "main", "--", "clusters")
        return text.count(f":{tag}\n") == REPLICA_POLICIES

    started = time.perf_counter()
    try:
        for tag in ("1.0.1", "1.0.2", "1.0.3"):
            if tag != "1.0.1":
                push_tags(registry_url, image_path, [tag])
            deadline = time.monotonic() + 120
            while not at(tag):
                if time.monotonic() > deadline:
                    raise SystemExit(f"replicas did not reach {tag}")
                time.sleep(0.2)
        time.sleep(3)
    finally:
        for process, _log in processes:
            process.send_signal(signal.SIGTERM)
        for process, _log in processes:
            process.wait(timeout=60)
    elapsed = time.perf_counter() - started
    history = git(base, "--git-dir", str(repo), "log", "--format=%ae%x1f%s", "main")
    steps = [SUBJECT.match(line.split("\x1f", 1)[1]) for line in history.splitlines() if line.startswith("gitbot@")]
    moves = Counter((m["policy"], m["old"], m["new"]) for m in steps if m)
    twice = sum(count - 1 for count in moves.values())
    back = sum(1 for _p, old, new in moves if tuple(map(int, new.split("."))) <= tuple(map(int, old.split("."))))
    reports: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for _process, path in processes:
        for line in path.read_text(errors="replace").splitlines():
            event = json.loads(line) if line.startswith("{") else {}
            if event.get("event") == "change" and event.get("outcome") == "committed":
                reports[str(event["ref"])] += 1
            if event.get("event") == "cycle" and event.get("outcome") == "failed":
                failed[str(event.get("error_type"))] += 1
    reported_twice = sum(count - 1 for count in reports.values())
    print(
        f"{REPLICAS} replicas of {REPLICA_POLICIES} commit-mode policies on one branch, 1 s interval, {elapsed:.0f} s"
    )
    print(f"  changes delivered: {sum(moves.values())} commits ({len(moves)} distinct steps)")
    print(f"  duplicates found: {twice + back + reported_twice}")
    print(f"    steps committed twice: {twice}, tags moved back: {back}, reported by two replicas: {reported_twice}")
    print(f"  failed cycles (lost races, retried at the next tick): {dict(failed) or 0}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        base = Path(tmp)
        registry = start_registry(base / "registry")
        try:
            (base / "one").mkdir()
            one_daemon(base / "one", registry.url, registry.host)
            (base / "many").mkdir()
            replicas(base / "many", registry.url, registry.host)
        finally:
            registry.stop()


if __name__ == "__main__":
    main()
