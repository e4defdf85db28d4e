"""What the scanner finds: images, kustomize images, Helm values, markers, weights, and the cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gitbot.domain import Target
from gitbot.errors import ManifestError, MissingPathError
from gitbot.manifests import Problem, ScanCache, blob_id, may_hold_targets, scan_paths, scan_text, scan_tree

WORKLOADS = """\
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: ops}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          initContainers:
            - name: init
              image: busybox:1.36
          containers:
            - name: job
              image: "acme/job:2.0"
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  template:
    spec:
      ephemeralContainers: [{name: debug, image: alpine:3}]
      containers: [{name: web, image: 'acme/web:1'}]
"""


def by_pointer(targets: list[Target]) -> dict[tuple[int, str], Target]:
    return {(t.document, t.pointer): t for t in targets}


def test_pod_template_images_in_every_container_list() -> None:
    found = by_pointer(scan_text("w.yaml", WORKLOADS))
    init = found[(0, "/spec/jobTemplate/spec/template/spec/initContainers/0/image")]
    assert (init.value, init.container, init.resource, init.kind) == (
        "busybox:1.36",
        "init",
        "CronJob/ops/nightly",
        "image",
    )
    assert (init.line, init.column) == (11, 22)
    assert found[(0, "/spec/jobTemplate/spec/template/spec/containers/0/image")].value == "acme/job:2.0"
    assert found[(1, "/spec/template/spec/ephemeralContainers/0/image")].container == "debug"
    assert found[(1, "/spec/template/spec/containers/0/image")].resource == "Rollout//web"
    assert len(found) == 4


def test_kustomize_images() -> None:
    text = (
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n"
        "  - name: app\n    newName: reg/app\n    newTag: '1.2'\n  - name: db\n    digest: sha256:abc\n"
    )
    found = by_pointer(scan_text("kustomization.yaml", text))
    assert {p: (t.kind, t.value) for (_, p), t in found.items()} == {
        "/images/0/newName": ("name", "reg/app"),
        "/images/0/newTag": ("tag", "1.2"),
        "/images/1/digest": ("digest", "sha256:abc"),
    }
    assert found[(0, "/images/0/newTag")].ref == "reg/app:1.2"


def test_helmrelease_values_strings_and_mappings() -> None:
    text = """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: app, namespace: apps}
spec:
  values:
    image: {registry: ghcr.io, repository: acme/app, tag: 1.0.0}
    sidecars:
      - name: proxy
        image: envoy:v1.30
"""
    found = by_pointer(scan_text("hr.yaml", text))
    tag = found[(0, "/spec/values/image/tag")]
    assert (tag.kind, tag.value, tag.ref) == ("tag", "1.0.0", "ghcr.io/acme/app:1.0.0")
    assert found[(0, "/spec/values/image/repository")].kind == "name"
    proxy = found[(0, "/spec/values/sidecars/0/image")]
    assert (proxy.kind, proxy.container) == ("image", "proxy")


def test_plain_values_file() -> None:
    found = scan_text("values.yaml", "replicaCount: 1\nimage:\n  repository: nginx\n  tag: stable\n")
    assert [(t.pointer, t.resource) for t in found] == [
        ("/image/repository", "Values//"),
        ("/image/tag", "Values//"),
    ]


def test_setter_markers_give_policy_and_kind() -> None:
    text = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
data:
  image: ghcr.io/a/b:1.0 # {"$imagepolicy": "flux-system:app"}
  tag: "1.0" # {"$imagepolicy": "flux-system:app:tag"}
  name: ghcr.io/a/b # {"$imagepolicy": "flux-system:app:name"}
  # a comment {"$imagepolicy": "flux-system:nothing"}
"""
    found = by_pointer(scan_text("m.yaml", text))
    assert {p: (t.kind, t.marker) for (_, p), t in found.items()} == {
        "/data/image": ("image", "flux-system:app"),
        "/data/tag": ("tag", "flux-system:app"),
        "/data/name": ("name", "flux-system:app"),
    }


@pytest.mark.parametrize("version", ["v1alpha3", "v1beta1", "v1"])
def test_virtualservice_weights_with_destination_identity(version: str) -> None:
    text = f"""\
apiVersion: networking.istio.io/{version}
kind: VirtualService
metadata: {{name: podinfo, namespace: test}}
spec:
  http:
    - route:
        - destination: {{host: podinfo, subset: ga, port: {{number: 9898}}}}
          weight: 100
        - destination: {{host: podinfo, subset: canary}}
    - route:
        - destination: {{host: other}}
          weight: 0
"""
    found = scan_text("vs.yaml", text)
    assert [(t.pointer, t.route, t.destination, t.value) for t in found] == [
        ("/spec/http/0/route/0/weight", 0, "host=podinfo,subset=ga,port=9898", "100"),
        ("/spec/http/1/route/0/weight", 1, "host=other", "0"),
    ]


def test_httproute_weights_with_backend_identity() -> None:
    text = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: web}
spec:
  rules:
    - backendRefs:
        - {name: app-ga, port: 80, weight: 90}
        - {name: app-canary, namespace: web, port: 80, weight: 10}
"""
    found = scan_text("r.yaml", text)
    assert [(t.destination, t.value, t.source) for t in found] == [
        ("name=app-ga,port=80", "90", "httproute"),
        ("name=app-canary,namespace=web,port=80", "10", "httproute"),
    ]


def test_resources_owned_by_other_controllers_are_marked() -> None:
    text = """\
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: podinfo
  ownerReferences: [{apiVersion: flagger.app/v1beta1, kind: Canary, name: podinfo}]
spec:
  http: [{route: [{destination: {host: podinfo}, weight: 100}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: d
  annotations: {kustomize.toolkit.fluxcd.io/reconcile: disabled}
spec: {template: {spec: {containers: [{name: c, image: x:1}]}}}
"""
    assert [t.unmanaged for t in scan_text("o.yaml", text)] == ["flagger", "reconcile-disabled"]


def test_shared_anchor_values_and_other_kinds_are_not_targets() -> None:
    text = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {image: not-a-target}\n---\n"
        "image: &i app:1\nother: *i\n"
    )
    assert scan_text("x.yaml", text) == []


def test_unparseable_file_names_file_and_line() -> None:
    with pytest.raises(ManifestError, match=r"^broken.yaml:2:"):
        scan_text("broken.yaml", "image: a\n  b: [\n")


def test_byte_screen() -> None:
    assert may_hold_targets(b"weight: 1")
    assert may_hold_targets(b"image: x")
    assert not may_hold_targets(b"kind: ConfigMap\ndata: {a: b}\n")


def test_blob_id_matches_git() -> None:
    # `printf 'hello\n' | git hash-object --stdin`
    assert blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_scan_paths_reports_relative_posix_and_uses_the_cache(tmp_path: Path) -> None:
    (tmp_path / "apps" / "web").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text("image: hidden:1\n")
    (tmp_path / "apps" / "web" / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: a:1}]}\n"
    )
    (tmp_path / "apps" / "cm.yml").write_text("kind: ConfigMap\n")
    cache_dir = tmp_path / "cache"
    cache = ScanCache(cache_dir)
    first = scan_paths(tmp_path, ["apps"], cache=cache)
    assert [t.file for t in first] == ["apps/web/pod.yaml"]
    assert (cache.hits, cache.misses) == (0, 1)
    cache.save()
    again = ScanCache(cache_dir)
    second = scan_paths(tmp_path, ["apps"], cache=again)
    assert second == first
    assert (again.hits, again.misses) == (1, 0)
    (tmp_path / "apps" / "web" / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: a:2}]}\n"
    )
    assert [t.value for t in scan_paths(tmp_path, ["apps"], cache=again)] == ["a:2"]


def test_missing_path_and_non_utf8_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file"):
        scan_paths(tmp_path, ["nope"])
    (tmp_path / "bad.yaml").write_bytes(b"image: \xff\n")
    with pytest.raises(ManifestError, match="not UTF-8"):
        scan_paths(tmp_path, ["."])


def test_damaged_or_foreign_cache_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{image: a:1}]}\n"
    )
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    (cache_dir / ScanCache.FILE_NAME).write_text("{not json")
    assert [t.value for t in scan_paths(tmp_path, ["pod.yaml"], cache=ScanCache(cache_dir))] == ["a:1"]
    (cache_dir / ScanCache.FILE_NAME).write_text('{"version": "other rules", "entries": {"x": []}}')
    cache = ScanCache(cache_dir)
    assert [t.value for t in scan_paths(tmp_path, ["pod.yaml"], cache=cache)] == ["a:1"]
    assert cache.misses == 1


def test_a_damaged_entry_of_a_current_cache_is_scanned_again(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{image: a:1}]}\n"
    )
    cache_dir = tmp_path / "cache"
    first = ScanCache(cache_dir)
    fresh = scan_paths(tmp_path, ["pod.yaml"], cache=first)
    first.save()
    path = cache_dir / ScanCache.FILE_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    (key,) = data["entries"]
    for damage in ([{"value": "b:2"}], ["not a target"], "not a list"):
        data["entries"][key] = damage
        path.write_text(json.dumps(data), encoding="utf-8")
        cache = ScanCache(cache_dir)
        assert scan_paths(tmp_path, ["pod.yaml"], cache=cache) == fresh
        assert cache.misses == 1


def test_a_missing_path_is_its_own_error_naming_the_path_as_given(tmp_path: Path) -> None:
    (tmp_path / "present").mkdir()
    with pytest.raises(MissingPathError) as caught:
        scan_paths(tmp_path, ["present", "clusters/other"])
    assert caught.value.where == "clusters/other"
    assert caught.value.one_line() == "clusters/other: no such file or directory"


def test_a_path_that_is_neither_file_nor_directory_says_so(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    with pytest.raises(ManifestError) as caught:
        scan_paths(tmp_path, ["pipe.yaml"])
    assert not isinstance(caught.value, MissingPathError)
    assert caught.value.one_line() == "pipe.yaml: not a regular file or directory"


def test_links_and_special_files_in_a_directory_are_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("image: secret:1\n")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "pod.yaml").write_text("image: app:1\n")
    (tree / "link.yaml").symlink_to(outside)
    (tree / "zero.yaml").symlink_to("/dev/zero")
    os.mkfifo(tree / "pipe.yaml")
    assert [t.value for t in scan_paths(tmp_path, ["tree"])] == ["app:1"]
    with pytest.raises(ManifestError, match="symbolic link"):
        scan_paths(tmp_path, ["tree/link.yaml"])


def test_a_policy_path_through_a_linked_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "prod").mkdir(parents=True)
    (outside / "prod" / "app.yaml").write_text("kind: Pod\nspec:\n  containers:\n    - {name: a, image: x:1}\n")
    root = tmp_path / "repo"
    root.mkdir()
    (root / "clusters").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ManifestError, match="outside the repository"):
        scan_paths(root, ["clusters/prod"])


def test_prune_keeps_only_what_the_last_scan_used(tmp_path: Path) -> None:
    (tmp_path / "apps").mkdir()
    old = tmp_path / "apps" / "a.yaml"
    old.write_text("kind: Pod\nspec:\n  containers:\n    - {name: a, image: 'a:1'}\n")
    cache = ScanCache(tmp_path / "cache")
    scan_paths(tmp_path, ["apps"], cache=cache)
    assert cache.prune() == 0
    old.write_text("kind: Pod\nspec:\n  containers:\n    - {name: a, image: 'a:2'}\n")
    scan_paths(tmp_path, ["apps"], cache=cache)
    assert cache.prune() == 1  # the blob of a:1 is gone from the tree, so from the cache
    cache.save()
    again = ScanCache(tmp_path / "cache")
    assert [t.value for t in scan_paths(tmp_path, ["apps"], cache=again)] == ["a:2"]
    assert (again.hits, again.misses) == (1, 0)


POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: a:1}]}\n"


def test_an_oversize_file_is_not_read_but_reported_and_the_scan_goes_on(tmp_path: Path) -> None:
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "a-pod.yaml").write_text(POD)
    # A ConfigMap of 2 MiB that names images (so the byte screen alone would not skip it).
    big = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n" + "  k: image containers\n" * 100_000
    (tmp_path / "apps" / "big.yaml").write_text(big)
    (tmp_path / "apps" / "z-pod.yaml").write_text(POD.replace("a:1", "z:1"))
    scan = scan_tree(tmp_path, ["apps"])
    assert [t.value for t in scan.targets] == ["a:1", "z:1"]
    assert scan.problems == (
        Problem(
            "apps/big.yaml", None, "larger than the 1 MiB limit for a manifest; not read (raise spec.git.maxFileSize)"
        ),
    )
    assert str(scan.problems[0]).startswith("apps/big.yaml: larger than the 1 MiB limit")


def test_the_file_size_limit_is_a_setting_and_counts_bytes(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(POD)
    size = len(POD.encode())
    assert scan_tree(tmp_path, ["pod.yaml"], max_file_size=size).problems == ()
    scan = scan_tree(tmp_path, ["pod.yaml"], max_file_size=size - 1)
    assert scan.targets == ()
    assert [p.file for p in scan.problems] == ["pod.yaml"]
    assert "larger than the" in scan.problems[0].why


def test_scan_paths_refuses_what_it_cannot_report(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(POD)
    with pytest.raises(ManifestError, match=r"^pod.yaml: larger than the 10 bytes limit"):
        scan_paths(tmp_path, ["."], max_file_size=10)
