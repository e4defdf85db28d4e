"""Policy files: the shipped examples load, and every kind of mistake names file, line and field."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from gitbot.config import load_policies, load_policy, parse_duration, parse_size
from gitbot.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
apiVersion: gitbot.dev/v1alpha1
kind: Policy
metadata: {name: prod}
spec:
  git: {url: https://git.example/acme/config.git, paths: [clusters/prod]}
  images:
    - name: podinfo-ga
      repository: ghcr.io/stefanprodan/podinfo
      filter: "0.1.*"
      targets: [{resource: Deployment/test/podinfo-ga, container: podinfod}]
"""


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_refusal(tmp_path: Path, text: str) -> str:
    """The one-line error of loading the policy `text` from a file."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    return info.value.one_line()


def test_shipped_policies_load() -> None:
    policies = load_policies(REPO / "policies")
    by_name = {p.name: p for p in policies}
    production = by_name["production"]
    filters = {image.name: image.filter for image in production.spec.images}
    assert filters == {"podinfo-ga": "0.1.*", "podinfo-canary": "0.2.*"}
    assert production.spec.canaries[0].steps == (10, 60, 100)
    assert production.spec.canaries[0].interval == timedelta(minutes=10)
    assert by_name["staging"].spec.delivery.mode == "commit"


def test_good_policy_is_frozen(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD))
    assert policy.spec.git.branch == "main"
    with pytest.raises(ValueError, match="frozen"):
        policy.spec.git.branch = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("old", "new", "line", "needle"),
    [
        (
            "container: podinfod}",
            "containr: podinfod}",
            10,
            "spec.images[0].targets[0].containr: is not a known field",
        ),
        ('filter: "0.1.*"', "filter: [1, 2]", 9, "spec.images[0].filter"),
        ("name: podinfo-ga", "name: Podinfo_GA", 7, "spec.images[0].name"),
        ("kind: Policy", "kind: Polcy", 2, "kind: must be one of 'Policy'"),
        ("paths: [clusters/prod]", "paths: [../etc]", 5, "paths must stay inside the repository"),
        ("https://git.example", "https://bot:s3cret@git.example", 5, "must not contain a password"),
        ("      repository: ghcr.io/stefanprodan/podinfo\n", "", 7, "spec.images[0].repository: is required"),
    ],
)
def test_mistakes_name_file_line_and_field(tmp_path: Path, old: str, new: str, line: int, needle: str) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    text = info.value.one_line()
    assert text.startswith(f"{path}:{line}: "), text
    assert needle in text
    assert "\n" not in text
    assert "s3cret" not in text


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "  oops: [\n")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert str(path) in info.value.one_line()
    assert "not valid YAML" in info.value.one_line()


def test_wrong_api_version(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("gitbot.dev/v1alpha1", "gitbot.dev/v2"))
    with pytest.raises(ConfigError, match=r"policy.yaml:1: apiVersion: must be gitbot.dev/v1alpha1"):
        load_policy(path)


def test_pull_request_mode_needs_github(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "  delivery: {mode: pull-request}\n")
    with pytest.raises(ConfigError, match="needs a github section"):
        load_policy(path)


def test_duplicate_policy_names(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD, "b.yaml")
    with pytest.raises(ConfigError, match="already used by"):
        load_policies(tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(minutes=90)),
    ],
)
def test_durations(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "5x", "0s", "m", -3, True, float("inf"), 1e300, "99999999999h"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("value", [".inf", "99999999999h", "1e300"])
def test_durations_beyond_a_timedelta_are_one_line_errors(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, GOOD + f"  schedule: {{interval: {value}}}\n")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert info.value.one_line().startswith(f"{path}:11: spec.schedule.interval: expected a duration")


CANARY = (
    GOOD
    + """\
    - name: podinfo-canary
      repository: ghcr.io/stefanprodan/podinfo
      filter: "0.2.*"
      targets: [{resource: Deployment/test/podinfo-canary}]
  schedule: {cron: "*/10 * * * *"}
  canaries:
    - name: podinfo
      route: VirtualService/test/podinfo
      stable: {subset: ga}
      canary: {subset: canary}
      image: podinfo-canary
      steps: [10, 60, 100]
      analysis:
        prometheus: {url: "http://prometheus:9090"}
        window: 5m
        stableWorkload: podinfo-ga
        canaryWorkload: podinfo-canary
        checks:
          - {name: success-rate, min: 99}
"""
)


def test_the_canary_example_loads(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, CANARY))
    assert policy.spec.canaries[0].image == "podinfo-canary"
    assert policy.spec.schedule.cron == "*/10 * * * *"


@pytest.mark.parametrize(
    ("old", "new", "where", "needle"),
    [
        ("image: podinfo-canary", "image: podinfo-canry", "21: spec.canaries[0].image", "'podinfo-canry' is not"),
        ("steps: [10, 60, 100]", "steps: [10, 60, 90]", "22: spec.canaries[0].steps", "end at 100"),
        (
            "image: podinfo-canary",
            "image: podinfo-canary\n      onComplete: promote",
            "22: spec.canaries[0].onComplete",
            "promoteTo",
        ),
        ("- name: podinfo-canary", "- name: podinfo-ga", "11: spec.images[1].name", "names must be unique"),
        ("- name: podinfo\n", "- name: podinfo-ga\n", "17: spec.canaries[0].name", "names must be unique"),
        ("- name: podinfo\n", "- name: promote-podinfo\n", "17: spec.canaries[0].name", "made by hand"),
        ("- name: podinfo-canary", "- name: rollback-x", "11: spec.images[1].name", "made by hand"),
        ('filter: "0.2.*"', 'filter: "regexp:(("', "13: spec.images[1].filter", "invalid regexp"),
        ('filter: "0.2.*"', 'filter: "semver:>>>1"', "13: spec.images[1].filter", "semver"),
        (
            'repository: ghcr.io/stefanprodan/podinfo\n      filter: "0.2',
            'repository: ghcr.io/Stefan/podinfo\n      filter: "0.2',
            "12: spec.images[1].repository",
            "'Stefan' must be lowercase",
        ),
        (
            'repository: ghcr.io/stefanprodan/podinfo\n      filter: "0.2',
            'repository: ghcr.io/stefanprodan/podinfo:0.2.0\n      filter: "0.2',
            "12: spec.images[1].repository",
            "names a tag or digest",
        ),
        ('"*/10 * * * *"', '"99 * * * *"', "15: spec.schedule.cron", "minute field '99': the last value (99) is"),
        ('"*/10 * * * *"', '"* * * * mon-sun/0"', "15: spec.schedule.cron", "day of week field"),
        ('"*/10 * * * *"', '"* * 0 * *"', "15: spec.schedule.cron", "day of month field '0'"),
        ('"*/10 * * * *"', '"* * * foo *"', "15: spec.schedule.cron", "month field 'foo'"),
        ('"*/10 * * * *"', '"30-10 * * * *"', "15: spec.schedule.cron", "minute field '30-10': The minimum value"),
        ('"*/10 * * * *"', '"* * * * sat-sun"', "15: spec.schedule.cron", "day of week field 'sat-sun' has a range"),
        # Steps beyond a field's range: the daemon's scheduler refuses them, so loading the policy does too.
        ('"*/10 * * * *"', '"*/61 * * * *"', "15: spec.schedule.cron", "minute field '*/61': the step value (61)"),
        ('"*/10 * * * *"', '"0 */24 * * *"', "15: spec.schedule.cron", "hour field '*/24': the step value (24)"),
        ('"*/10 * * * *"', '"0 0 * * 8"', "15: spec.schedule.cron", "day of week field '8' must stay within 0-7"),
        ('"*/10 * * * *"', '"0 0 * *"', "15: spec.schedule.cron", "cron must have five fields"),
        ("window: 5m", "window: 1.5", "25: spec.canaries[0].analysis.window", "a duration needs a unit"),
        (
            "min: 99}",
            "max: 99}",
            "29: spec.canaries[0].analysis.checks[0]",
            "does not take max; it takes: maxDrop, min",
        ),
        (
            "stableWorkload: podinfo-ga",
            "stableWorkload: 'a\"b'",
            "26: spec.canaries[0].analysis.stableWorkload",
            "quotes",
        ),
        ("stable: {subset: ga}", "stable: {backendRef: podinfo-ga}", "19: spec.canaries[0].stable", "subset or host"),
        ("VirtualService/test", "HTTPRoute/test", "19: spec.canaries[0].stable", "by backendRef"),
    ],
)
def test_canary_and_schedule_mistakes_name_their_field(
    tmp_path: Path, old: str, new: str, where: str, needle: str
) -> None:
    assert old in CANARY
    path = write(tmp_path, CANARY.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    text = info.value.one_line()
    assert text.startswith(f"{path}:{where}: "), text
    assert needle in text, text


def test_group_all_keeps_the_name_of_its_one_change_free(tmp_path: Path) -> None:
    text = GOOD.replace("name: podinfo-ga", "name: images") + "  delivery: {group: all}\n"
    with pytest.raises(ConfigError, match=r":7: spec.images\[0\].name: 'images' names the one change of group: all"):
        load_policy(write(tmp_path, text))
    assert (
        load_policy(write(tmp_path, GOOD.replace("name: podinfo-ga", "name: images"))).spec.images[0].name == "images"
    )


def test_a_route_without_namespace_needs_the_analysis_namespace(tmp_path: Path) -> None:
    text = CANARY.replace("VirtualService/test/podinfo", "VirtualService//podinfo")
    with pytest.raises(ConfigError, match=r":23: spec.canaries\[0\].analysis: the route names no namespace"):
        load_policy(write(tmp_path, text))
    text = text.replace("window: 5m", "window: 5m\n        namespace: test")
    assert load_policy(write(tmp_path, text)).spec.canaries[0].route == "VirtualService//podinfo"


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (
            '"http://prometheus:9090"',
            '"http://admin:s3cret@prometheus:9090"',
            "24: spec.canaries[0].analysis.prometheus.url",
        ),
        (
            "  canaries:\n",
            "  delivery:\n    mode: pull-request\n"
            "    github: {repository: a/b, apiUrl: 'https://x:s3cret@ghe/api/v3'}\n  canaries:\n",
            "18: spec.delivery.github.apiUrl",
        ),
    ],
)
def test_no_url_of_a_policy_carries_a_password(tmp_path: Path, old: str, new: str, where: str) -> None:
    assert old in CANARY
    path = write(tmp_path, CANARY.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    text = info.value.one_line()
    assert text.startswith(f"{path}:{where}: the URL must not contain a password"), text
    assert "s3cret" not in text


def test_registry_credentials_come_in_pairs(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "  registries: [{host: ghcr.io, usernameEnv: REGISTRY_USER}]\n")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert info.value.one_line() == (
        f"{path}:11: spec.registries[0]: give both usernameEnv and passwordEnv, or neither"
    )


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("https://ghp_0123456789abcdef@github.com/acme/config.git", True),
        ("https://bot:s3cret@git.example/acme/config.git", True),
        ("ssh://git@github.com/acme/config.git", False),
        ("git@github.com:acme/config.git", False),
        ("https://git.example/acme/config.git", False),
    ],
)
def test_a_token_pasted_into_the_git_url_is_refused(tmp_path: Path, url: str, refused: bool) -> None:
    path = write(tmp_path, GOOD.replace("https://git.example/acme/config.git", url))
    if not refused:
        assert load_policy(path).spec.git.url == url
        return
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert info.value.one_line().startswith(f"{path}:5: spec.git.url: the URL must not contain a password or token")
    assert "ghp_" not in info.value.one_line() and "s3cret" not in info.value.one_line()


@pytest.mark.parametrize(
    "checks",
    [
        ["{name: success-rate, min: 99}"],
        # Comparisons with GA are judged at 100% against GA's figures from before the step to 100%.
        ["{name: success-rate, maxDrop: 1}"],
        ["{name: latency-p99, maxRatio: 1.2}"],
        ["{name: error-rate, test: sequential}", "{name: latency}"],
        ["{name: custom, query: 'sum(up{pod=~\"{canary}.*\"})', min: 1}"],
        ["{name: custom, query: 'x{w=\"{stable}\"}', max: 1}", "{name: error-rate}"],
    ],
)
def test_promote_is_allowed_with_any_check_that_judges_at_100_percent(tmp_path: Path, checks: list[str]) -> None:
    text = CANARY.replace(
        "image: podinfo-canary\n", "image: podinfo-canary\n      onComplete: promote\n      promoteTo: podinfo-ga\n"
    ).replace("- {name: success-rate, min: 99}", "\n          ".join(f"- {check}" for check in checks))
    canary = load_policy(write(tmp_path, text)).spec.canaries[0]
    assert canary.on_complete == "promote"
    assert len(canary.analysis.checks) == len(checks)


def test_promote_is_refused_when_only_custom_checks_naming_stable_would_judge_at_100_percent(tmp_path: Path) -> None:
    text = CANARY.replace(
        "image: podinfo-canary\n", "image: podinfo-canary\n      onComplete: promote\n      promoteTo: podinfo-ga\n"
    )
    only_stable = text.replace(
        "{name: success-rate, min: 99}", '{name: custom, query: \'a{w="{canary}"} / b{w="{stable}"}\', max: 1.5}'
    )
    with pytest.raises(ConfigError) as info:
        load_policy(write(tmp_path, only_stable))
    where = info.value.where or ""
    assert where.startswith(f"{tmp_path / 'policy.yaml'}:30") and where.endswith("spec.canaries[0].analysis.checks")
    assert info.value.message.startswith("onComplete: promote needs a check that can be judged at 100%")
    assert "{stable}" in info.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (1048576, 1048576),
        ("512Ki", 512 * 1024),
        ("1Mi", 1 << 20),
        ("8MiB", 8 << 20),
        ("10MB", 10_000_000),
        ("1G", 1_000_000_000),
        ("2048", 2048),
        ("100B", 100),
    ],
)
def test_sizes(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "1.5Mi", "-1", "0", "lots", "1Ti", True])
def test_bad_sizes(text: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_limits_have_defaults_and_can_be_set(tmp_path: Path) -> None:
    spec = load_policy(write(tmp_path, GOOD)).spec
    assert spec.git.max_file_size == 1024 * 1024
    assert spec.timeout == timedelta(minutes=10)
    limits = spec.registry_limits
    assert (limits.max_response_size, limits.max_tags, limits.request_timeout) == (
        8 * 1024 * 1024,
        50_000,
        timedelta(seconds=30),
    )
    text = GOOD.replace("paths: [clusters/prod]}", "paths: [clusters/prod], maxFileSize: 256Ki}") + (
        "  timeout: 2m\n  registryLimits: {maxResponseSize: 1Mi, maxTags: 500, requestTimeout: 5s}\n"
    )
    spec = load_policy(write(tmp_path, text)).spec
    assert spec.git.max_file_size == 256 * 1024
    assert spec.timeout == timedelta(minutes=2)
    limits = spec.registry_limits
    assert (limits.max_response_size, limits.max_tags, limits.request_timeout) == (1 << 20, 500, timedelta(seconds=5))


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("  timeout: 0s\n", "spec.timeout: expected a duration"),
        ("  registryLimits: {maxTags: 0}\n", "spec.registryLimits.maxTags"),
        ("  registryLimits: {maxResponseSize: huge}\n", "spec.registryLimits.maxResponseSize: expected a size"),
    ],
)
def test_limit_mistakes_name_their_field(tmp_path: Path, extra: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(needle)):
        load_policy(write(tmp_path, GOOD + extra))


# A credential pasted where it does not belong: it must never come back in an error.
SECRET = "Zq7canaryS3cret0x5f"


def refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    line = info.value.one_line()
    assert SECRET not in line and SECRET not in (info.value.hint or "")
    return line


@pytest.mark.parametrize(
    ("url", "part"),
    [
        (f"https://git.example/acme/config.git?access_token={SECRET}", "a query"),
        (f"https://git.example/acme/config.git?private_token={SECRET}&x=1", "a query"),
        (f"https://git.example/acme/config.git#token={SECRET}", "a fragment"),
        (f"ssh://git.example/acme/config.git?token={SECRET}", "a query"),
        (f"git@git.example:acme/config.git?token={SECRET}", "a query"),
        (f"https://{SECRET}@git.example/acme/config.git", "user info"),
        (f"ssh://git:{SECRET}@git.example/acme/config.git", "a password in its user info"),
    ],
)
def test_a_credential_in_any_part_of_the_git_url_is_refused_without_echo(tmp_path: Path, url: str, part: str) -> None:
    line = refusal(write(tmp_path, GOOD.replace("https://git.example/acme/config.git", url)))
    assert f":5: spec.git.url: the URL must not contain a password or token (it has {part})" in line


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (
            '"http://prometheus:9090"',
            f'"http://prometheus:9090/?token={SECRET}"',
            "24: spec.canaries[0].analysis.prometheus.url",
        ),
        (
            '"http://prometheus:9090"',
            f'"http://prometheus:9090#{SECRET}"',
            "24: spec.canaries[0].analysis.prometheus.url",
        ),
        (
            '"http://prometheus:9090"',
            f'"prometheus:9090?token={SECRET}"',
            "24: spec.canaries[0].analysis.prometheus.url",
        ),
        (
            "  canaries:\n",
            "  delivery:\n    mode: pull-request\n"
            f"    github: {{repository: a/b, apiUrl: 'https://ghe/api/v3?access_token={SECRET}'}}\n  canaries:\n",
            "18: spec.delivery.github.apiUrl",
        ),
        (
            "  canaries:\n",
            f"  registries: [{{host: 'robot:{SECRET}@registry.example'}}]\n  canaries:\n",
            "16: spec.registries[0].host",
        ),
        (
            "  canaries:\n",
            f"  registries: [{{host: 'registry.example?token={SECRET}'}}]\n  canaries:\n",
            "16: spec.registries[0].host",
        ),
    ],
)
def test_a_credential_in_any_url_of_a_policy_is_refused_at_its_line(
    tmp_path: Path, old: str, new: str, where: str
) -> None:
    assert old in CANARY
    path = write(tmp_path, CANARY.replace(old, new, 1))
    assert refusal(path).startswith(f"{path}:{where}: ")


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("paths: [clusters/prod]}", f"paths: [clusters/prod], tokenEnv: {SECRET}-x}}", "5: spec.git.tokenEnv"),
        ("paths: [clusters/prod]}", f"paths: [clusters/prod], tokenEnv: 'ghp_{SECRET} '}}", "5: spec.git.tokenEnv"),
        (
            '"http://prometheus:9090"}',
            f'"http://prometheus:9090", tokenEnv: "Bearer {SECRET}"}}',
            "24: spec.canaries[0].analysis.prometheus.tokenEnv",
        ),
        (
            "  canaries:\n",
            f"  registries: [{{host: r.example, usernameEnv: robot, passwordEnv: '{SECRET}!'}}]\n  canaries:\n",
            "16: spec.registries[0].passwordEnv",
        ),
        (
            "  canaries:\n",
            "  delivery:\n    mode: pull-request\n"
            f"    github: {{repository: a/b, tokenEnv: 'github_pat_{SECRET}/x'}}\n  canaries:\n",
            "18: spec.delivery.github.tokenEnv",
        ),
        (
            "  canaries:\n",
            f"  notifications: [{{slack: {{webhookEnv: 'https://hooks.example/{SECRET}'}}}}]\n  canaries:\n",
            "16: spec.notifications[0].slack.webhookEnv",
        ),
        (
            "  canaries:\n",
            f"  notifications: [{{webhook: {{urlEnv: 'x.{SECRET}'}}}}]\n  canaries:\n",
            "16: spec.notifications[0].webhook.urlEnv",
        ),
    ],
)
def test_a_value_pasted_where_a_variable_name_belongs_is_refused_without_echo(
    tmp_path: Path, old: str, new: str, where: str
) -> None:
    assert old in CANARY
    path = write(tmp_path, CANARY.replace(old, new, 1))
    assert refusal(path) == (
        f"{path}:{where}: expected the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*), not a value; "
        "put the secret in that variable and name it here"
    )


def test_good_variable_names_and_urls_still_load(tmp_path: Path) -> None:
    text = CANARY.replace('"http://prometheus:9090"}', '"https://prometheus:9090/prefix", tokenEnv: _Prom_Token2}')
    text = text.replace(
        "  canaries:\n", "  registries: [{host: '127.0.0.1:5000', usernameEnv: U, passwordEnv: P}]\n  canaries:\n"
    )
    policy = load_policy(write(tmp_path, text))
    assert policy.spec.canaries[0].analysis.prometheus.token_env == "_Prom_Token2"
    assert policy.spec.registries[0].host == "127.0.0.1:5000"


@pytest.mark.parametrize(
    ("old", "new", "where", "needle"),
    [
        (
            "image: podinfo-canary",
            "image: podinfo-canary\n      onNewImage: restrat",
            "22: spec.canaries[0].onNewImage",
            "must be one of 'restart' or 'continue', got 'restrat'",
        ),
        (
            "window: 5m",
            "window: 5m\n        notifyAfterInconclusive: soon",
            "26: spec.canaries[0].analysis.notifyAfterInconclusive",
            "expected a duration such as 30s, 5m or 1h30m, got 'soon'",
        ),
        (
            "window: 5m",
            "window: 5m\n        notifyAfterInconclusive: 0",
            "26: spec.canaries[0].analysis.notifyAfterInconclusive",
            "a number of cycles >= 1",
        ),
        (
            "window: 5m",
            "window: 5m\n        notifyAfterInconclusive: 3",
            "26: spec.canaries[0].analysis.notifyAfterInconclusive",
            "3 counts cycles, which a cron schedule does not space evenly; give how long",
        ),
    ],
)
def test_on_new_image_and_notify_after_mistakes_name_their_field(
    tmp_path: Path, old: str, new: str, where: str, needle: str
) -> None:
    path = write(tmp_path, CANARY.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    text = info.value.one_line()
    assert text.startswith(f"{path}:{where}: "), text
    assert needle in text, text


def test_notify_after_is_a_duration_and_the_older_count_of_cycles_is_that_many_intervals(tmp_path: Path) -> None:
    every_5m = CANARY.replace('{cron: "*/10 * * * *"}', "{interval: 5m}")
    defaults = load_policy(write(tmp_path, every_5m))
    assert defaults.spec.canaries[0].on_new_image == "restart"
    assert defaults.notify_after(0) == timedelta(minutes=15)
    for value, expected in (("30m", timedelta(minutes=30)), ("3", timedelta(minutes=15)), ("4", timedelta(minutes=20))):
        text = every_5m.replace("window: 5m", f"window: 5m\n        notifyAfterInconclusive: {value}")
        assert load_policy(write(tmp_path, text)).notify_after(0) == expected
    continuing = every_5m.replace("image: podinfo-canary", "image: podinfo-canary\n      onNewImage: continue")
    assert load_policy(write(tmp_path, continuing)).spec.canaries[0].on_new_image == "continue"
