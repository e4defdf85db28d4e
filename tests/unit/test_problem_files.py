"""A file that does not parse is a problem file: skipped and reported at its line while the scan goes on,
remembered by the scan cache, and held against only the images and canaries whose named target it may hold."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from gitbot.cli import main
from gitbot.commands.runner import log_problems, summarize
from gitbot.config import load_policy
from gitbot.cycle import CycleResult, set_aside_unbound
from gitbot.domain import Target
from gitbot.errors import ManifestError
from gitbot.logs import FIELDS
from gitbot.manifests import (
    Mentions,
    Problem,
    ScanCache,
    blob_id,
    held_in,
    scan_files,
    scan_paths,
    scan_tree,
    walk_files,
)
from gitbot.service import CycleSummary, ServiceMetrics
from tests.unit.test_config import CANARY, write
from tests.unit.test_runner import write_policy

POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: a:1}]}\n"

# A chart's Deployment template as Helm charts write it: a templated name, `{{- include ... }}` lines.
HELM_TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ template "podinfo.fullname" . }}
  labels:
    {{- include "podinfo.labels" . | nindent 4 }}
spec:
  template:
    spec:
      containers:
        - name: {{ .Chart.Name }}
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
"""
# A VirtualService wrapped in a template condition, as a chart's optional canary route is.
HELM_ROUTE = """\
{{- if .Values.canary.enabled }}
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: podinfo
  namespace: test
spec:
  hosts: [podinfo]
  http:
    - route:
        - destination: {host: podinfo, subset: ga}
          weight: 100
        - destination: {host: podinfo, subset: canary}
          weight: 0
{{- end }}
"""
# A GitLab CI file with a key given twice, which GitLab's own loader refuses too.
GITLAB_CI = """\
image: registry.gitlab.com/gitlab-org/release-cli:latest
stages: [build, deploy]
build:
  stage: build
  image: docker:24
  script: [docker build -t app .]
build:
  stage: deploy
  script: [kubectl apply -f k8s/]
"""
HALF_WRITTEN = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop\nspec:\n  image: x\n"
TAB_INDENTED = "apiVersion: v1\nkind: Pod\nspec:\n\tcontainers:\n\t- image: nginx:1.25\n"
NUL_BYTE = "apiVersion: v1\nkind: Pod\nspec: {containers: [{image: nginx:1.25}]}\n\x00\n"
DEEP = "image: x\nnested: " + "[" * 3000 + "]" * 3000 + "\n"
LATIN_1 = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: caf\xe9\nspec: {containers: [{image: nginx:1.25}]}\n"

BROKEN: list[tuple[str, bytes, int, str]] = [
    ("helm-deployment.yaml", HELM_TEMPLATE.encode(), 6, "not valid YAML: expected the node content, but found '-'"),
    ("gitlab-ci.yml", GITLAB_CI.encode(), 7, "duplicate key 'build'"),
    ("half.yaml", HALF_WRITTEN.encode(), 4, "not valid YAML: "),
    ("tabs.yaml", TAB_INDENTED.encode(), 4, "not valid YAML: found character '\\t' that cannot start any token"),
    ("nul.yaml", NUL_BYTE.encode(), 4, "not valid YAML: control character U+0000 is not allowed"),
    ("deep.yaml", DEEP.encode(), 2, "not accepted: collections nested too deeply"),
    ("latin1.yaml", LATIN_1, 4, "not UTF-8 (byte 46)"),
]


@pytest.mark.parametrize(("name", "data", "line", "why"), BROKEN, ids=[case[0] for case in BROKEN])
def test_a_file_that_does_not_parse_is_a_problem_at_its_line_and_the_scan_goes_on(
    tmp_path: Path, name: str, data: bytes, line: int, why: str
) -> None:
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "a-pod.yaml").write_text(POD)
    (tmp_path / "apps" / name).write_bytes(data)
    (tmp_path / "apps" / "z-pod.yaml").write_text(POD.replace("a:1", "z:1"))

    for scan in (scan_tree(tmp_path, ["apps"]), scan_files(walk_files(tmp_path, ["apps"]), read(tmp_path))):
        assert [t.value for t in scan.targets] == ["a:1", "z:1"]
        [problem] = scan.problems
        assert (problem.file, problem.line) == (f"apps/{name}", line)
        assert problem.why.startswith(why) and problem.why.endswith("; not scanned")
        assert str(problem).startswith(f"apps/{name}:{line}: {why}")
    # Asked for the targets alone, the same file is an error at its line.
    with pytest.raises(ManifestError, match=rf"^apps/{name}:{line}: "):
        scan_paths(tmp_path, ["apps"])


def read(root: Path) -> Callable[[Sequence[str]], Mapping[str, bytes]]:
    return lambda paths: {path: (root / path).read_bytes() for path in paths}


def test_what_a_broken_file_names_is_read_from_its_text(tmp_path: Path) -> None:
    (tmp_path / "route.yaml").write_text(HELM_ROUTE)
    (tmp_path / "deploy.yaml").write_text(HELM_TEMPLATE + '# {"$imagepolicy": "flux-system:podinfo-ga"}\n')
    routes, deploy = sorted(scan_tree(tmp_path, ["."]).problems, key=lambda p: p.file, reverse=True)

    assert held_in([routes], "VirtualService/test/podinfo") == "not parsed: route.yaml:1"
    assert held_in([routes], "HTTPRoute/test/podinfo") == ""  # another kind of that name
    assert held_in([routes], "VirtualService/test/other") == ""
    # A templated name cannot be edited, so a Deployment named by the policy is not in the template.
    assert held_in([deploy], "Deployment/test/podinfo") == ""
    assert held_in([deploy], marker="podinfo-ga") == "not parsed: deploy.yaml:6"
    assert held_in([routes, deploy], marker="podinfo-canary") == ""
    unread = Problem("big.yaml", None, "larger than the 1 MiB limit")
    assert held_in([unread, routes], "VirtualService/test/podinfo") == "not read: big.yaml; not parsed: route.yaml:1"
    assert held_in([unread], marker="podinfo-ga") == ""


def test_the_cache_remembers_a_file_that_does_not_parse_and_takes_it_once_fixed(tmp_path: Path) -> None:
    (tmp_path / "apps").mkdir()
    broken = tmp_path / "apps" / "route.yaml"
    broken.write_text(HELM_ROUTE)
    cache_dir = tmp_path / "cache"
    cache = ScanCache(cache_dir)
    first = scan_tree(tmp_path, ["apps"], cache=cache)
    assert (cache.hits, cache.misses) == (0, 1)
    cache.prune()
    cache.save()

    # A restarted bot knows the blob: it is not parsed again, and says the same, names included.
    again = ScanCache(cache_dir)
    second = scan_tree(tmp_path, ["apps"], cache=again)
    assert (again.hits, again.misses) == (1, 0)
    assert second.problems == first.problems
    assert second.problems[0].mentions == first.problems[0].mentions
    assert held_in(second.problems, "VirtualService/test/podinfo") == "not parsed: apps/route.yaml:1"
    # From a listing, a known broken blob is not even read.
    listed = [replace(f, blob=blob_id(broken.read_bytes())) for f in walk_files(tmp_path, ["apps"])]
    asked: list[str] = []

    def reading(paths: Sequence[str]) -> Mapping[str, bytes]:
        asked.extend(paths)
        return read(tmp_path)(paths)

    scan = scan_files(listed, reading, cache=again)
    assert (scan.problems, asked) == (first.problems, [])
    assert again.prune() == 0

    fixed = "\n".join(line for line in HELM_ROUTE.splitlines() if "{{" not in line) + "\n"
    broken.write_text(fixed)
    third = scan_tree(tmp_path, ["apps"], cache=again)
    assert third.problems == ()
    assert [t.value for t in third.targets] == ["100", "0"]
    # The broken blob left the tree, so it leaves the cache.
    assert again.prune() == 1


def image(resource: str, container: str | None = None) -> Target:
    return Target("clusters/a.yaml", 0, "/spec", 3, 5, "image", resource, "x:1", container=container)


def weight(route: str) -> Target:
    return Target("clusters/r.yaml", 0, "/spec/http/0/route/0/weight", 9, 17, "weight", route, "100")


def broken(root: Path, file: str, text: str) -> Problem:
    """The problem of `text` written at `file` under `root`, as a scan reports it."""
    (root / file).parent.mkdir(parents=True, exist_ok=True)
    (root / file).write_text(text)
    [problem] = scan_tree(root, [file]).problems
    return problem


def test_a_canary_whose_route_is_in_a_file_that_does_not_parse_is_set_aside_alone(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, CANARY))
    route = broken(tmp_path, "clusters/route.yaml", HELM_ROUTE)
    problems = [route]
    targets = [image(t.resource, t.container) for i in policy.spec.images for t in i.targets]

    kept = set_aside_unbound(policy, targets, problems)

    assert [i.name for i in kept.spec.images] == ["podinfo-ga", "podinfo-canary"]
    assert kept.spec.canaries == ()
    assert problems[1] == Problem(
        policy.source,
        policy.lines["/spec/canaries/0/route"],
        "spec.canaries[0].route: canary podinfo: VirtualService/test/podinfo not found in the files read "
        "(not parsed: clusters/route.yaml:1); not planned this cycle",
    )
    assert (problems[1].scope, problems[1].blocks) == ("policy", "podinfo")
    assert route.scope == "file" and route.blocks is None


def test_a_broken_file_that_names_nothing_of_the_policy_sets_nothing_aside(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, CANARY))
    problems = [
        broken(tmp_path, "ci/.gitlab-ci.yml", GITLAB_CI),
        broken(tmp_path, "chart/deployment.yaml", HELM_TEMPLATE),
    ]
    targets = [image(t.resource, t.container) for i in policy.spec.images for t in i.targets]
    targets.append(weight(policy.spec.canaries[0].route))

    assert set_aside_unbound(policy, targets, problems) is policy
    assert len(problems) == 2
    # A missing target no broken file may hold stays the policy's mistake, for the planner to report.
    assert set_aside_unbound(policy, targets[:1], problems) is policy


def test_an_image_with_a_marker_in_a_file_that_does_not_parse_is_set_aside_with_its_canary(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, CANARY))
    marked = HALF_WRITTEN + '  tag: "1.0" # {"$imagepolicy": "test:podinfo-canary:tag"}\n'
    problems = [broken(tmp_path, "clusters/half.yaml", marked)]
    targets = [image(t.resource, t.container) for i in policy.spec.images for t in i.targets]
    targets.append(weight(policy.spec.canaries[0].route))

    kept = set_aside_unbound(policy, targets, problems)

    assert [i.name for i in kept.spec.images] == ["podinfo-ga"]
    assert kept.spec.canaries == ()
    assert [(p.line, p.blocks) for p in problems[1:]] == [
        (policy.lines["/spec/images/1"], "podinfo-canary"),
        (policy.lines["/spec/canaries/0"], "podinfo"),
    ]
    assert problems[1].why == (
        "spec.images[1]: image podinfo-canary: a field marked for it is in a file that does not parse "
        "(not parsed: clusters/half.yaml:4); not planned this cycle"
    )
    assert problems[2].why.startswith("spec.canaries[0]: canary podinfo: its image podinfo-canary is set aside (")


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


def test_scan_lists_a_file_that_does_not_parse_and_refuses_one_it_is_asked_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pod.yaml").write_text(POD)
    (tmp_path / "gitlab-ci.yml").write_text(GITLAB_CI)

    code, out, err = run(["scan", str(tmp_path)], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[-2:] == [
        f"problem: {tmp_path}/gitlab-ci.yml:7: duplicate key 'build'; not scanned",
        "1 target(s) in 1 file(s); 1 file(s) not parsed",
    ]

    code, out, err = run(["scan", str(tmp_path / "gitlab-ci.yml")], capsys)
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"gitbot: error: {tmp_path}/gitlab-ci.yml:7: duplicate key 'build'"]
    code, out, err = run(["scan", "--json", str(tmp_path / "pod.yaml"), str(tmp_path / "gitlab-ci.yml")], capsys)
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1


def test_the_service_counts_problem_files_and_logs_what_they_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    problems = (
        Problem("clusters/route.yaml", 12, "duplicate key 'weight'; not scanned", Mentions()),
        Problem("clusters/big.yaml", None, "larger than the 1 MiB limit for a manifest; not read"),
        Problem(
            "policies/p.yaml",
            21,
            "spec.canaries[0].route: canary podinfo: ... (not parsed: clusters/route.yaml:12); not planned this cycle",
            scope="policy",
            blocks="podinfo",
        ),
        Problem("policies/p.yaml", 9, "spec.images[0]: image app holds at 1.2.0: ...", scope="policy"),
    )
    result = CycleResult("p", (), (), "", 1, "head", problems=problems)
    summary = summarize(result, 0.5)
    assert (summary.problem_files, summary.left_out) == (2, ("podinfo",))

    metrics = ServiceMetrics()
    metrics.register_policy("p")
    assert 'gitbot_problem_files{policy="p"} 0.0' in metrics.exposition().decode()
    metrics.record_cycle(summary, now=0)
    assert 'gitbot_problem_files{policy="p"} 2.0' in metrics.exposition().decode()
    # A failed cycle says nothing about the files: the last count stands.
    metrics.record_cycle(CycleSummary("p", "failed", error="git server down"), now=0)
    assert 'gitbot_problem_files{policy="p"} 2.0' in metrics.exposition().decode()
    metrics.record_cycle(summarize(CycleResult("p", (), (), "", 1, "head"), 0.5), now=0)
    assert 'gitbot_problem_files{policy="p"} 0.0' in metrics.exposition().decode()

    with caplog.at_level(logging.INFO, logger="gitbot.run"):
        log_problems(write_policy(tmp_path), result)
    levels = [(r.levelname, r.__dict__[FIELDS].get("left_out")) for r in caplog.records]
    assert levels == [("WARNING", None), ("WARNING", None), ("ERROR", "podinfo"), ("WARNING", None)]


def test_a_damaged_record_of_failures_in_the_cache_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "route.yaml").write_text(HELM_ROUTE)
    cache_dir = tmp_path / "cache"
    cache = ScanCache(cache_dir)
    first = scan_tree(tmp_path, ["route.yaml"], cache=cache)
    cache.save()
    stored = json.loads((cache_dir / ScanCache.FILE_NAME).read_text())
    for entry in stored["failures"].values():
        del entry["names"]
    (cache_dir / ScanCache.FILE_NAME).write_text(json.dumps(stored))

    again = ScanCache(cache_dir)
    assert scan_tree(tmp_path, ["route.yaml"], cache=again).problems == first.problems
    assert (again.hits, again.misses) == (0, 1)
