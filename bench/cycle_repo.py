"""Generated configuration repositories for the whole-cycle benchmark, served by the test suite's servers.

Owns: the manifest generator (Deployments, StatefulSets and kustomizations with Flux setter markers, about
1.5 image references per manifest over ten images), loading a generated tree into a bare repository of the
loopback git server as one commit, the registry's tags (every image at 1.0.0 with older tags, and a newer
1.0.1 for the first seven, so that a cycle has updates to make) and the policy file that binds the images.
The benchmark and its test both build their repositories here, so the test keeps the generator honest.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.cli import cli_env
from tests.support.gitserver import GitServer
from tests.support.registry import RunningRegistry, clone_tags_on_disk, push_tags

ROOT = Path(__file__).resolve().parent.parent
IMAGES = 10
UPDATED_IMAGES = 7  # app0..app6 get a newer tag; app7..app9 are already at their newest
CURRENT = "1.0.0"
NEWER = "1.0.1"
OLDER_TAGS = tuple(f"0.{minor}.{patch}" for minor in range(1, 9) for patch in range(5))
POLICY = "bench"
PATH = "clusters/bench"

_DEPLOYMENT = """\
# {app}: the service and its log shipper
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {app}
  namespace: team-{team:02d}
  labels: {{app: {app}, tier: backend}}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {app}
  template:
    metadata:
      labels:
        app: {app}
    spec:
      containers:
        - name: main
          image: {first} # {{"$imagepolicy": "flux-system:{first_name}"}}
          ports:
            - containerPort: 8080
          resources:
            limits: {{cpu: 500m, memory: 256Mi}}
          readinessProbe:
            httpGet: {{path: /readyz, port: 8080}}
        - name: shipper
          image: "{second}" # {{"$imagepolicy": "flux-system:{second_name}"}}
          args: ["--output", "stdout"]
---
apiVersion: v1
kind: Service
metadata:
  name: {app}
  namespace: team-{team:02d}
spec:
  selector:
    app: {app}
  ports:
    - port: 80
      targetPort: 8080
"""

_SMALL_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {app}
  namespace: team-{team:02d}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}}}
    spec:
      containers:
        - name: main
          image: {first} # {{"$imagepolicy": "flux-system:{first_name}"}}
          env:
            - {{name: LOG_LEVEL, value: info}}
"""

_STATEFUL_SET = """\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {app}
  namespace: team-{team:02d}
spec:
  serviceName: {app}
  replicas: {replicas}
  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}}}
    spec:
      initContainers:
        - name: migrate
          image: {second} # {{"$imagepolicy": "flux-system:{second_name}"}}
      containers:
        - name: main
          image: {first} # {{"$imagepolicy": "flux-system:{first_name}"}}
          volumeMounts:
            - {{name: data, mountPath: /var/lib/{app}}}
  volumeClaimTemplates:
    - metadata: {{name: data}}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {{requests: {{storage: 1Gi}}}}
"""

_KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: team-{team:02d}
resources:
  - ../base
images:
  - name: {first_repo}
    newTag: {tag} # {{"$imagepolicy": "flux-system:{first_name}:tag"}}
"""


@dataclass(frozen=True)
class Generated:
    """What `generate` wrote: manifests, image references, and how many of them have a newer tag."""

    manifests: int
    references: int
    updatable: int
    lines: int


def image_name(index: int) -> str:
    return f"app{index}"


def generate(root: Path, count: int, registry_host: str, *, updated: bool = False) -> Generated:
    """Write `count` manifests under `root/clusters/bench`: a quarter each of two-container Deployments,
    one-container Deployments, StatefulSets with an init container and kustomizations (in their own folder,
    named `kustomization.yaml` as kustomize wants). Every reference is at `CURRENT`, or with `updated` at the
    newest tag of its image (the repository as a cycle leaves it)."""

    def tag(index: int) -> str:
        return NEWER if updated and index < UPDATED_IMAGES else CURRENT

    references = updatable = lines = 0
    for i in range(count):
        app = f"svc{i:05d}"
        team = i % 40
        first, second = i % IMAGES, (i * 3 + 1) % IMAGES
        values = {
            "app": app,
            "team": team,
            "replicas": 1 + i % 3,
            "first": f"{registry_host}/bench/{image_name(first)}:{tag(first)}",
            "first_name": image_name(first),
            "first_repo": f"{registry_host}/bench/{image_name(first)}",
            "second": f"{registry_host}/bench/{image_name(second)}:{tag(second)}",
            "second_name": image_name(second),
            "tag": tag(first),
        }
        kind = i % 4
        used = [first] if kind in (1, 3) else [first, second]
        template = (_DEPLOYMENT, _SMALL_DEPLOYMENT, _STATEFUL_SET, _KUSTOMIZATION)[kind]
        relative = f"team-{team:02d}/{app}/kustomization.yaml" if kind == 3 else f"team-{team:02d}/{app}.yaml"
        path = root / PATH / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        text = template.format(**values)
        path.write_text(text, encoding="utf-8")
        references += len(used)
        updatable += sum(1 for index in used if index < UPDATED_IMAGES)
        lines += text.count("\n")
    (root / "README.md").write_text("generated cluster configuration\n", encoding="utf-8")
    return Generated(count, references, updatable, lines)


def push_bench_tags(registry: RunningRegistry) -> None:
    """Every image at `CURRENT` with 40 older tags; the first `UPDATED_IMAGES` also at `NEWER`."""
    for index in range(IMAGES):
        repo = f"bench/{image_name(index)}"
        push_tags(registry.url, repo, [CURRENT])
        newer = [NEWER] if index < UPDATED_IMAGES else []
        clone_tags_on_disk(registry.root, repo, CURRENT, [*OLDER_TAGS, *newer])


def _git_env(author: tuple[str, str], index: Path) -> dict[str, str]:
    return {
        "GIT_INDEX_FILE": str(index),
        "GIT_AUTHOR_NAME": author[0],
        "GIT_AUTHOR_EMAIL": author[1],
        "GIT_COMMITTER_NAME": author[0],
        "GIT_COMMITTER_EMAIL": author[1],
    }


def load_repository(server: GitServer, name: str, tree: Path) -> str:
    """Make bare repository `name` on `server` hold the files under `tree` as one commit on main; its URL."""
    path = server.repo_path(name)
    subprocess.run(
        ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)],
        check=True,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
        },
    )
    server.git(name, "config", "http.receivepack", "true")
    commit_tree(server, name, tree, "Generated configuration", ("Seed Author", "seed@example.test"))
    return server.url_for(name)


def commit_tree(server: GitServer, name: str, tree: Path, message: str, author: tuple[str, str]) -> str:
    """Commit the files under `tree` on top of main of `name` (files it lacks stay as they are); the new sha.

    One `git add` of the whole tree: the server's per-file helpers would run a process per file."""
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        env = _git_env(author, Path(tmp) / "index")
        parent = subprocess.run(
            ["git", "--git-dir", str(server.repo_path(name)), "rev-parse", "--verify", "--quiet", "refs/heads/main"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if parent:
            server.git(name, "read-tree", parent, env=env)
        server.git(name, "--work-tree", str(tree), "add", "--all", ".", env=env)
        object_id = server.git(name, "write-tree", env=env).strip()
        parents = ["-p", parent] if parent else []
        commit = server.git(name, "commit-tree", object_id, *parents, input_text=message + "\n", env=env).strip()
        server.git(name, "update-ref", "refs/heads/main", commit, env=env)
    return commit


def count_at(server: GitServer, name: str, tag: str) -> int:
    """How many image references under the benchmark's path are at `tag` on main."""
    proc = subprocess.run(
        ["git", "--git-dir", str(server.repo_path(name)), "grep", "--count", "-E", f'(:|newTag: ){tag}"? #', "main"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode not in (0, 1):  # 1: nothing matched
        raise RuntimeError(f"git grep failed in {name}: {proc.stderr.strip()}")
    out = proc.stdout
    return sum(int(line.rsplit(":", 1)[1]) for line in out.splitlines() if line)


def write_policy(directory: Path, *, url: str, username: str, registry_host: str, group: str = "per-image") -> Path:
    """The policy of the generated repository: commit mode, ten images bound by their setter markers."""
    images = "".join(
        f"    - {{name: {image_name(i)}, repository: {registry_host}/bench/{image_name(i)}, filter: '1.0.*'}}\n"
        for i in range(IMAGES)
    )
    text = (
        "apiVersion: gitbot.dev/v1alpha1\n"
        "kind: Policy\n"
        f"metadata: {{name: {POLICY}}}\n"
        "spec:\n"
        "  git:\n"
        f"    url: {url}\n"
        "    branch: main\n"
        f"    paths: [{PATH}]\n"
        "    tokenEnv: GITBOT_GIT_TOKEN\n"
        f"    username: {username}\n"
        "    author: {name: gitbot, email: gitbot@bench.example}\n"
        "  delivery: {mode: commit, group: " + group + "}\n"
        "  schedule: {interval: 5m}\n"
        f"  registries: [{{host: {json.dumps(registry_host)}, insecure: true}}]\n"
        "  images:\n" + images
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{POLICY}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def gitbot_env(server: GitServer, home: Path) -> dict[str, str]:
    """The environment of a `gitbot` process: the git token, its own cache and home, no Docker logins."""
    docker = home / "docker"
    docker.mkdir(parents=True, exist_ok=True)
    (docker / "config.json").write_text('{"auths": {}}', encoding="utf-8")
    return cli_env(
        GITBOT_GIT_TOKEN=server.token,
        GITBOT_CACHE_DIR=str(home / "cache"),
        DOCKER_CONFIG=str(docker),
        HOME=str(home),
    )
