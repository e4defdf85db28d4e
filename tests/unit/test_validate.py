"""`gitbot validate`: one line per valid policy, one error line and exit 2 otherwise."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gitbot.cli import main
from gitbot.commands.validate import format_duration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def example_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables the example policies name, as where gitbot runs (their absence is tested on its own)."""
    for name in ("GITBOT_GIT_TOKEN", "GITHUB_TOKEN", "SLACK_WEBHOOK_URL"):
        monkeypatch.setenv(name, "set")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(["validate", *args])
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_the_example_policies_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--policies", str(ROOT / "policies"))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(
        "production: mode=pull-request images=podinfo-ga,podinfo-canary canaries=podinfo schedule=every 5m file="
    )
    assert lines[1].startswith('staging: mode=commit images=podinfo,redis canaries=- schedule=cron "*/10 * * * *"')
    assert lines[2] == "2 policies valid"


def test_a_bad_policy_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text((ROOT / "policies" / "staging.yaml").read_text())
    bad = tmp_path / "zz.yaml"
    bad.write_text(
        "apiVersion: gitbot.dev/v1alpha1\nkind: Policy\nmetadata: {name: zz}\n"
        "spec:\n  git: {url: u}\n  schedule: {interval: 5m, jitter: soon}\n"
    )
    code, out, err = run(capsys, "--policies", str(tmp_path))
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"gitbot: error: {bad}:6: spec.schedule.jitter: expected a duration such as 30s, 5m or 1h30m, got 'soon'"
    ]


def test_a_missing_directory_is_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "--policies", str(tmp_path / "none"))
    assert code == 2
    assert "policy directory does not exist" in err


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(minutes=5), "5m"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(seconds=0.5), "0.5s"),
        (timedelta(hours=2), "2h"),
    ],
)
def test_durations_read_as_written(duration: timedelta, text: str) -> None:
    assert format_duration(duration) == text


def test_a_canary_whose_only_latency_check_is_a_ratio_is_warned_about(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = (ROOT / "policies" / "production.yaml").read_text(encoding="utf-8")
    ratio_only = text.replace("{name: latency-p99, maxRatio: 1.2, max: 500}", "{name: latency-p99, maxRatio: 1.2}")
    assert ratio_only != text
    path = tmp_path / "production.yaml"
    path.write_text(ratio_only, encoding="utf-8")
    # Its canary's promotion gate names the staging policy.
    staging = (ROOT / "policies" / "staging.yaml").read_text(encoding="utf-8")
    (tmp_path / "staging.yaml").write_text(staging, encoding="utf-8")
    code, out, err = run(capsys, "--policies", str(tmp_path))
    assert code == 0 and out.splitlines()[-1] == "2 policies valid"
    line = next(n for n, row in enumerate(ratio_only.splitlines(), 1) if "latency-p99" in row)
    assert err.splitlines() == [
        f"gitbot: warning: {path}:{line}: spec.canaries[0].analysis.checks[1]: canary podinfo's only latency check "
        "is a ratio to GA (maxRatio); at 100% GA takes no traffic, so it is judged on GA's figures from before the "
        "step to 100% or is inconclusive; add max (milliseconds) for a bound that always judges"
    ]
