"""Several edits of one file in one cycle: located with one parse and confirmed with one parse of the text
holding them all, by libyaml wherever it reads as ruamel.yaml does; each step's text is the one the edits
made one after the other would give. Parses are counted, not timed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitbot import edits, yamlio
from gitbot.config import Policy, load_policy
from gitbot.domain import Assignment
from gitbot.edits import apply_assignments, apply_steps
from gitbot.errors import EditError
from gitbot.history import History
from gitbot.manifests import scan_text
from gitbot.planner import plan_images
from gitbot.rollout import apply_changes
from tests.unit.test_edit_properties import NEW_VALUES, scalars, stream

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: app # the name
spec:
  containers:
    - name: app
      image: 'registry.example/app:1.0.0'
    - name: side
      image: "registry.example/side:1.0.0"  # sidecar
    - name: plain
      image: registry.example/plain:1.0.0
"""


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts the calls of `yamlio.parse` (ruamel.yaml) and `yamlio.parse_fast` (libyaml), by source."""
    counts: Counter[str] = Counter()

    def spy(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def counted(text: str, source: str, **kwargs: Any) -> Any:
            counts[f"{name} {source}"] += 1
            counts[name] += 1
            return original(text, source, **kwargs)

        return counted

    monkeypatch.setattr(yamlio, "parse", spy("parse", yamlio.parse))
    monkeypatch.setattr(yamlio, "parse_fast", spy("parse_fast", yamlio.parse_fast))
    reads_as = yamlio.reads_as

    def confirmed(docs: Any, text: str, changed: Any) -> bool:
        # Confirming from libyaml's events of the edited text, without a tree: a parse of its own.
        counts["reads_as"] += 1
        return reads_as(docs, text, changed)

    monkeypatch.setattr(yamlio, "reads_as", confirmed)
    yield counts


def _pointer(index: int) -> str:
    return f"/spec/containers/{index}/image"


def test_each_chained_step_is_the_file_as_the_edits_one_after_the_other_leave_it(parses: Counter[str]) -> None:
    steps = [
        [Assignment(0, _pointer(0), "registry.example/app:1.1.0")],
        [Assignment(0, _pointer(1), "registry.example/side:2.0")],
        [Assignment(0, _pointer(2), "registry.example/plain:1.10"), Assignment(0, "/metadata/name", "yes")],
    ]
    out = apply_steps(POD, steps, source="pod.yaml", chain=True)
    assert parses["parse_fast pod.yaml"] == 1 and parses["reads_as"] == 1, "one parse to locate, one to confirm"
    assert parses["parse"] == 0
    text = POD
    for step, got in zip(steps, out, strict=True):
        text = apply_assignments(text, step, source="pod.yaml")
        assert got == text
    assert 'name: "yes" # the name' in out[-1] and "'registry.example/app:1.1.0'" in out[0]


def test_unchained_steps_each_start_from_the_original_text() -> None:
    steps = [[Assignment(0, _pointer(0), "a:1")], [], [Assignment(0, _pointer(2), "c:3")]]
    out = apply_steps(POD, steps, source="pod.yaml", chain=False)
    assert out == [
        apply_assignments(POD, steps[0], source="pod.yaml"),
        POD,
        apply_assignments(POD, steps[2], source="pod.yaml"),
    ]


def test_one_field_given_two_values_in_two_steps_is_refused() -> None:
    steps = [[Assignment(0, _pointer(0), "a:1")], [Assignment(0, _pointer(0), "a:2")]]
    with pytest.raises(EditError, match="assigned twice"):
        apply_steps(POD, steps, source="pod.yaml")


ROUTE = """\
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: app}
spec:
  http:
    - route:
        - destination: {host: app, subset: ga}
          weight: 90
        - destination: {host: app, subset: canary}
          weight: 10
"""


def test_every_steps_text_keeps_a_route_whole_not_only_the_last() -> None:
    ga, canary = "/spec/http/0/route/0/weight", "/spec/http/0/route/1/weight"
    halves = [[Assignment(0, ga, "40")], [Assignment(0, canary, "60")]]
    with pytest.raises(EditError, match="not 100"):
        apply_steps(ROUTE, halves, source="vs.yaml")
    together = apply_steps(ROUTE, [[Assignment(0, ga, "40"), Assignment(0, canary, "60")]], source="vs.yaml")
    assert "weight: 40" in together[0] and "weight: 60" in together[0]


def test_a_refusal_reads_as_ruamel_yaml_words_it(parses: Counter[str]) -> None:
    text = "base: &port 8080\nother: *port\n"
    with pytest.raises(EditError, match="alias of &port"):
        apply_assignments(text, [Assignment(0, "/other", "9090")], source="f.yaml")
    assert parses["parse"] == 1, "libyaml does not report anchor names: ruamel.yaml gives the refusal"


def test_a_yaml_directive_is_followed_by_the_reader_that_follows_it(parses: Counter[str]) -> None:
    text = "%YAML 1.1\n---\non: 1_000\n"
    out = apply_assignments(text, [Assignment(0, "/on", "2000")], source="f.yaml")
    assert out == "%YAML 1.1\n---\non: 2000\n"
    assert parses["parse"] == 2


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_libyaml_reading_decides_every_edit_as_ruamel_yaml_does(data: st.DataObject) -> None:
    text = data.draw(stream())
    targets = scalars(text)
    chosen = data.draw(st.lists(st.sampled_from(targets), min_size=1, max_size=4, unique_by=lambda t: t[:2]))
    steps = [[Assignment(doc, pointer, data.draw(NEW_VALUES))] for doc, pointer, _ in chosen]
    outcomes: list[list[str] | str] = []
    for fast in (True, False):
        try:
            outcomes.append(edits._apply(text, steps, "gen", True, fast=fast))
        except EditError as exc:
            outcomes.append(exc.one_line())
    assert outcomes[0] == outcomes[1]


def _policy(tmp_path: Path, group: str) -> Policy:
    path = tmp_path / "p.yaml"
    lines = ["    - name: app\n      repository: registry.example/app\n      filter: '1.*'\n      targets:\n"]
    lines += [f"        - {{resource: Deployment/prod/d{i}, container: app}}\n" for i in range(3)]
    lines += ["    - name: side\n      repository: registry.example/side\n      filter: '1.*'\n"]
    path.write_text(
        "apiVersion: gitbot.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n"
        "  git: {url: https://git.example.test/c.git, paths: [apps]}\n"
        f"  delivery: {{mode: commit, group: {group}}}\n  images:\n" + "".join(lines),
        encoding="utf-8",
    )
    return load_policy(path)


def _deployment(i: int) -> str:
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d{i}, namespace: prod}}\n"
        "spec:\n  template:\n    spec:\n      containers:\n"
        "        - name: app\n          image: registry.example/app:1.0.0\n"
        '        - name: side\n          image: "registry.example/side:1.0.0" # {"$imagepolicy": "prod:side"}\n'
    )


@pytest.mark.parametrize("chain", [True, False])
def test_a_file_two_image_plans_edit_is_parsed_once_to_confirm_both(
    tmp_path: Path, parses: Counter[str], chain: bool
) -> None:
    policy = _policy(tmp_path, "per-image")
    texts = {f"apps/d{i}.yaml": _deployment(i) for i in range(3)}
    targets = [t for file, text in texts.items() for t in scan_text(file, text)]
    parses.clear()
    tags = {"app": ["1.0.0", "1.2.0"], "side": ["1.0.0", "1.3.0"]}
    plans = plan_images(policy, targets, texts, tags, History("p"), chain=chain)
    assert [p.name for p in plans] == ["app", "side"]
    for file in texts:
        assert parses[f"parse_fast {file}"] == 1, "one parse to locate both plans' edits"
    assert parses["reads_as"] == len(texts), "one read of each edited file to confirm both plans' edits"
    assert parses["parse"] == 0
    # The same files as planning each image on its own, each from what the plan before left (or the base).
    current = dict(texts)
    for plan in plans:
        expected = apply_changes(current if chain else texts, plan.changes)
        assert dict(plan.files) == expected
        if chain:
            current.update(expected)
    assert "side:1.3.0" in dict(plans[1].files)["apps/d0.yaml"]
    assert ("app:1.2.0" in dict(plans[1].files)["apps/d0.yaml"]) is chain


@pytest.mark.parametrize(
    ("old", "new", "written"),
    [
        ("yes", "true", '"true"'),
        ("on", "false", '"false"'),
        ("yes", "no", '"no"'),
        ("12", "13", "13"),
        ("on", "x", "x"),
    ],
)
def test_plain_values_are_typed_as_ruamel_yaml_types_them(old: str, new: str, written: str) -> None:
    # libyaml reads `yes` and `on` as YAML 1.1 booleans, ruamel.yaml (YAML 1.2) as strings: a string stays one.
    out = apply_assignments(f"a: {old}\nb: {old}\n", [Assignment(0, "/a", new)], source="f.yaml")
    assert out == f"a: {written}\nb: {old}\n"
    assert out == edits._apply(f"a: {old}\nb: {old}\n", [[Assignment(0, "/a", new)]], "f.yaml", True, fast=False)[0]
