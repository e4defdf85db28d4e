"""The demo's seed: the example manifests, the demo policy and the tag timeline.

Owns what the sandbox starts from: the files under `gitbot/demo_data/` (committed to the sandbox's bare
repository as they are), the text of the demo policy (commit mode, GA `0.1.*`, canary `0.2.*`, canary steps
10/60/100 gated by success rate and p99 latency), and which tags exist at the start and which one is
released later. Pure: it reads the packaged example files and builds text; it writes nothing.
"""

from __future__ import annotations

from pathlib import Path

DEMO_DATA = Path(__file__).resolve().parent.parent / "demo_data"
POLICY_NAME = "demo"
BRANCH = "main"
PATHS = ("clusters/staging",)
ROUTE = "VirtualService/test/podinfo"
VIRTUAL_SERVICE_FILE = "clusters/staging/podinfo.yaml"
IMAGE_PATH = "stefanprodan/podinfo"
PUBLIC_IMAGE = f"ghcr.io/{IMAGE_PATH}"
INITIAL_TAGS = ("0.1.0", "0.1.1", "0.1.2", "0.2.0", "0.2.1")
SLOW_TAG = "0.2.2"
CANARY_INTERVAL_MINUTES = 10
ANALYSIS_WINDOW_MINUTES = 5
P99_MAX_MS = 300
P99_MAX_RATIO = 1.5


def seed_files() -> dict[str, str]:
    """The example manifests, relative path -> text, exactly as packaged."""
    files = {}
    for path in sorted(DEMO_DATA.rglob("*.yaml")):
        files[path.relative_to(DEMO_DATA).as_posix()] = path.read_bytes().decode("utf-8")
    if VIRTUAL_SERVICE_FILE not in files:
        raise FileNotFoundError(f"the demo example lacks {VIRTUAL_SERVICE_FILE} under {DEMO_DATA}")
    return files


def policy_text(git_url: str, repository: str, prometheus_url: str) -> str:
    """The demo policy: the same shape a user writes, pointing at the sandbox's sources."""
    return f"""\
# The demo's policy: GA follows 0.1.* patches, the canary follows 0.2.* and takes traffic from GA in
# steps while the metrics show it healthy. Written by `gitbot demo` into its sandbox.
apiVersion: gitbot.dev/v1alpha1
kind: Policy
metadata:
  name: {POLICY_NAME}
spec:
  git:
    url: {git_url}
    branch: {BRANCH}
    paths: [{", ".join(PATHS)}]
    author: {{name: gitbot, email: gitbot@example.invalid}}
  delivery:
    mode: commit
  schedule:
    interval: {CANARY_INTERVAL_MINUTES + 2}m
  images:
    - name: podinfo-ga
      repository: {repository}
      filter: "0.1.*"
      # bound by the {{"$imagepolicy": "test:podinfo-ga"}} marker in the manifest
    - name: podinfo-canary
      repository: {repository}
      filter: "0.2.*"
      targets:
        - {{resource: Deployment/test/podinfo-canary, container: podinfod}}
  canaries:
    - name: podinfo
      route: {ROUTE}
      stable: {{subset: ga}}
      canary: {{subset: canary}}
      image: podinfo-canary
      steps: [10, 60, 100]
      interval: {CANARY_INTERVAL_MINUTES}m
      analysis:
        prometheus: {{url: "{prometheus_url}"}}
        window: {ANALYSIS_WINDOW_MINUTES}m
        minRequests: 100
        stableWorkload: podinfo-ga
        canaryWorkload: podinfo-canary
        checks:
          - {{name: success-rate, min: 99}}
          # maxRatio compares with GA; max still judges at 100%, when GA gets no traffic
          - {{name: latency-p99, maxRatio: {P99_MAX_RATIO}, max: {P99_MAX_MS}}}
      onFailure: rollback
"""
