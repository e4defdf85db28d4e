"""The container image recipe and the example Kubernetes manifests under `docker/`.

Every manifest is checked against the Kubernetes JSON schemas (strict: unknown fields fail) shipped by
kubernetes-validate, then for the facts that tie the pieces together: probes, secrets, security context,
volumes, the generated ConfigMap of policies and the Dockerfile's user, entry point and port.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from gitbot.config import load_policies, load_policy
from gitbot.logs import secret_env_names
from gitbot.service import parse_shard

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
KUBE = DOCKER / "kubernetes"
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SECRET_VARIABLES = {"GITBOT_GIT_TOKEN", "GITHUB_TOKEN", "SLACK_WEBHOOK_URL"}


def load_all(path: Path) -> list[dict[str, Any]]:
    documents = [doc for doc in YAML(typ="safe", pure=True).load_all(path.read_text()) if doc is not None]
    # Through JSON so the schema validator sees plain dicts, lists and strings.
    return [json.loads(json.dumps(doc)) for doc in documents]


def kustomization() -> dict[str, Any]:
    [doc] = load_all(KUBE / "kustomization.yaml")
    return doc


def resources() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in kustomization()["resources"]:
        for doc in load_all(KUBE / name):
            out[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return out


def generated_configmaps() -> list[dict[str, Any]]:
    """The ConfigMaps kustomize's configMapGenerator makes (without the hash suffix)."""
    out = []
    for generator in kustomization()["configMapGenerator"]:
        data = {Path(file).name: (KUBE / file).read_text() for file in generator["files"]}
        out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data})
    return out


def deployment() -> dict[str, Any]:
    return resources()["Deployment/gitbot"]


def container() -> dict[str, Any]:
    [main] = deployment()["spec"]["template"]["spec"]["containers"]
    assert isinstance(main, dict)
    return main


def test_the_kustomization_names_files_that_exist() -> None:
    doc = kustomization()
    assert doc["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert doc["kind"] == "Kustomization"
    assert DNS_1123.match(doc["namespace"])
    for name in doc["resources"]:
        assert (KUBE / name).is_file(), name
    for generator in doc["configMapGenerator"]:
        for file in generator["files"]:
            assert (KUBE / file).is_file(), file


def test_every_resource_is_valid_against_the_kubernetes_schemas() -> None:
    version = kubernetes_validate.latest_version()
    docs = [*resources().values(), *generated_configmaps()]
    assert {d["kind"] for d in docs} == {"Namespace", "ServiceAccount", "Deployment", "Service", "ConfigMap"}
    for doc in docs:
        assert DNS_1123.match(doc["metadata"]["name"]), doc["metadata"]["name"]
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_schema_check_catches_a_misspelt_field() -> None:
    broken = json.loads(json.dumps(deployment()))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_the_configmap_policies_load_and_their_secrets_are_provided() -> None:
    [generator] = kustomization()["configMapGenerator"]
    policies = [load_policy(KUBE / file) for file in generator["files"]]
    assert len({p.name for p in policies}) == len(policies) >= 1
    assert [p.name for p in load_policies(KUBE / "policies")] == sorted(p.name for p in policies)
    env = {item["name"]: item for item in container()["env"]}
    for policy in policies:
        for name in secret_env_names(policy):
            ref = env[name]["valueFrom"]["secretKeyRef"]
            # gitbot run refuses to start when a variable a policy names is unset: an optional key would
            # crash-loop the pod instead of failing its creation with a clear reason.
            assert not ref.get("optional", False), f"{policy.name} needs {name}, but its secret key is optional"


def test_tokens_come_from_secret_references_only() -> None:
    env = {item["name"]: item for item in container()["env"]}
    for name in SECRET_VARIABLES:
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] and ref["key"]
        assert "value" not in env[name]


def test_probes_point_at_healthz_and_readyz_on_a_declared_port() -> None:
    main = container()
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert main[probe]["httpGet"]["port"] in ports
    args = main["args"]
    assert args[0] == "run"
    assert int(args[args.index("--port") + 1]) in ports.values()


def test_the_pod_runs_as_non_root_on_a_read_only_root_filesystem() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] in {
        key.split("/", 1)[1] for key in resources() if key.startswith("ServiceAccount/")
    }
    ctx = container()["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]


def test_volumes_policies_from_the_configmap_and_writable_dirs_from_emptydirs() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container()["volumeMounts"]}
    for mount in mounts.values():
        assert mount["name"] in volumes
    args = container()["args"]
    policies_dir = args[args.index("--policies") + 1]
    policies = volumes[mounts[policies_dir]["name"]]
    assert policies["configMap"]["name"] == kustomization()["configMapGenerator"][0]["name"]
    for writable in ("/var/cache/gitbot", "/tmp"):
        assert "emptyDir" in volumes[mounts[writable]["name"]]
        assert not mounts[writable].get("readOnly", False)


def test_selectors_match_the_pod_labels() -> None:
    docs = resources()
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert deployment()["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = docs["Service/gitbot"]
    assert service["spec"]["selector"].items() <= labels.items()
    port_names = {p["name"] for p in container()["ports"]}
    assert all(p["targetPort"] in port_names for p in service["spec"]["ports"])
    assert service["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"


def dockerfile() -> list[tuple[str, str]]:
    text = (DOCKER / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_the_dockerfile_builds_a_non_root_image_with_git_and_the_gitbot_entry_point() -> None:
    steps = dockerfile()
    instructions = [k for k, _ in steps]
    assert steps[0] == ("FROM", "python:3.11-slim")
    installs = [rest for k, rest in steps if k == "RUN" and "apt-get install" in rest]
    assert installs and re.search(r"\bgit\b", installs[0])
    users = [rest for k, rest in steps if k == "USER"]
    assert users, "no USER instruction"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    # The last USER comes after every RUN, so nothing at run time is root.
    assert instructions.index("USER") > max(i for i, k in enumerate(instructions) if k == "RUN")
    assert int(user) == deployment()["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert json.loads(dict(steps)["ENTRYPOINT"]) == ["gitbot"]
    assert json.loads(dict(steps)["CMD"]) == ["run", "--policies", "/etc/gitbot/policies"]
    assert "/etc/gitbot/policies" in json.loads(dict(steps)["VOLUME"])
    assert int(dict(steps)["EXPOSE"]) in {p["containerPort"] for p in container()["ports"]}


def test_the_kubernetes_policies_are_the_example_policies() -> None:
    """The ConfigMap's copies under docker/kubernetes/policies/ must not drift from policies/."""
    examples = {path.name: path.read_bytes() for path in (ROOT / "policies").glob("*.y*ml")}
    copies = {path.name: path.read_bytes() for path in (KUBE / "policies").glob("*.y*ml")}
    assert sorted(copies) == sorted(examples)
    for name, text in examples.items():
        assert copies[name] == text, f"docker/kubernetes/policies/{name} differs from policies/{name}"
    [generator] = kustomization()["configMapGenerator"]
    assert sorted(Path(file).name for file in generator["files"]) == sorted(examples)


def test_the_dockerfile_copies_what_pip_install_needs_and_the_context_keeps_it() -> None:
    copied = [rest.split()[:-1] for keyword, rest in dockerfile() if keyword == "COPY"]
    sources = {source for sources in copied for source in sources}
    # pyproject names README.md as the long description; the package data (demo_data) lives under gitbot/.
    assert {"pyproject.toml", "README.md", "gitbot"} <= sources
    assert all((ROOT / source).exists() for source in sources)
    ignored = {
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()[:1] not in ("", "#")
    }
    assert not sources & ignored
    assert {".venv", ".git"} <= ignored


def sharded() -> dict[str, dict[str, Any]]:
    return {f"{doc['kind']}/{doc['metadata']['name']}": doc for doc in load_all(KUBE / "statefulset.yaml")}


def test_the_sharded_example_is_valid_against_the_kubernetes_schemas() -> None:
    version = kubernetes_validate.latest_version()
    docs = sharded()
    assert set(docs) == {"StatefulSet/gitbot", "Service/gitbot-shards"}
    for doc in docs.values():
        assert DNS_1123.match(doc["metadata"]["name"])
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_sharded_example_swaps_in_for_the_deployment() -> None:
    """Listed instead of deployment.yaml, it uses the same account, Service, ConfigMap and secrets."""
    assert "statefulset.yaml" not in kustomization()["resources"], "the default example runs one replica"
    assert "statefulset.yaml" in (KUBE / "kustomization.yaml").read_text(), "the kustomization says how to swap"
    stateful = sharded()["StatefulSet/gitbot"]
    pod, single = stateful["spec"]["template"], deployment()["spec"]["template"]
    [shard] = pod["spec"]["containers"]
    env = {item["name"]: item for item in shard["env"]}
    # The pod is the Deployment's pod plus the shard settings, so the two examples cannot drift apart.
    same_pod = json.loads(json.dumps(pod))
    same_pod["spec"]["containers"][0]["args"] = shard["args"][: shard["args"].index("--shard")]
    same_pod["spec"]["containers"][0]["env"] = [item for item in shard["env"] if item["name"] != "GITBOT_SHARDS"]
    assert same_pod == single
    assert shard["args"][shard["args"].index("--shard") + 1] == "auto"
    # --shard auto takes the ordinal from the pod name and N from GITBOT_SHARDS, which must match replicas.
    assert int(env["GITBOT_SHARDS"]["value"]) == stateful["spec"]["replicas"] > 1
    assert stateful["spec"]["podManagementPolicy"] == "Parallel"
    assert stateful["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    governing = sharded()[f"Service/{stateful['spec']['serviceName']}"]
    assert governing["spec"]["clusterIP"] == "None"
    assert governing["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert resources()["Service/gitbot"]["spec"]["selector"].items() <= pod["metadata"]["labels"].items()


def test_pod_names_of_the_stateful_set_are_valid_shards() -> None:
    stateful = sharded()["StatefulSet/gitbot"]
    count = stateful["spec"]["replicas"]
    name = stateful["metadata"]["name"]
    shards = [parse_shard("auto", count=str(count), hostname=f"{name}-{i}") for i in range(count)]
    assert [(s.index, s.count) for s in shards if s is not None] == [(i, count) for i in range(count)]
