"""A cron schedule is read once, by the scheduler's own parser: `gitbot validate` accepts exactly the schedules
the daemon can run, and refuses the others at their file and line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from pydantic import ValidationError

from gitbot.cli import main
from gitbot.config import Policy
from gitbot.cron import cron_trigger
from gitbot.service import trigger_for

POLICY = """apiVersion: gitbot.dev/v1alpha1
kind: Policy
metadata: {{name: nightly}}
spec:
  git: {{url: http://127.0.0.1:9/config.git}}
  schedule:
    cron: "{cron}"
"""

# Accepted by the scheduler: names, lists, steps, ranges, `7` for Sunday and APScheduler's `last`.
ACCEPTED = ["*/10 * * * *", "0 9 * * mon-fri", "15 3 1,15 jan,jul *", "0 0 * * 7", "0 12 last * *", "*/59 */23 * * *"]
# Refused by the scheduler (the first two were accepted by a hand-written check before).
REFUSED = ["*/61 * * * *", "0 */24 * * *", "60 * * * *", "0 0 32 * *", "0 0 * 13 *", "0 0 * * 8", "* * * *"]


def policy(cron: str) -> Policy:
    return Policy.model_validate(
        {
            "apiVersion": "gitbot.dev/v1alpha1",
            "kind": "Policy",
            "metadata": {"name": "nightly"},
            "spec": {"git": {"url": "http://127.0.0.1:9/config.git"}, "schedule": {"cron": cron}},
        }
    )


@pytest.mark.parametrize("cron", ACCEPTED)
def test_a_schedule_the_policy_accepts_is_the_daemons_trigger(cron: str) -> None:
    trigger = trigger_for(policy(cron), jitter=0)
    assert isinstance(trigger, CronTrigger)
    after = datetime(2026, 11, 27, 12, 3, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, after) == cron_trigger(cron).get_next_fire_time(None, after)


@pytest.mark.parametrize("cron", REFUSED)
def test_a_schedule_the_scheduler_refuses_is_refused_when_the_policy_loads(cron: str) -> None:
    with pytest.raises(ValueError, match="cron"):
        cron_trigger(cron)
    with pytest.raises(ValidationError, match="cron"):
        policy(cron)


def test_validate_names_the_file_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "nightly.yaml").write_text(POLICY.format(cron="*/61 * * * *"), encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "--policies", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"gitbot: error: {tmp_path / 'nightly.yaml'}:7: spec.schedule.cron: cron minute field '*/61': the step value "
        "(61) is higher than the total range of the expression (59) (in '*/61 * * * *')"
    )


def test_crontab_sunday_is_zero_and_seven() -> None:
    # 2026-11-29 is a Sunday; APScheduler 3 itself would read 0 as Monday.
    after = datetime(2026, 11, 27, 12, tzinfo=UTC)
    sunday = datetime(2026, 11, 29, tzinfo=UTC)
    assert cron_trigger("0 0 * * 0").get_next_fire_time(None, after) == sunday
    assert cron_trigger("0 0 * * 7").get_next_fire_time(None, after) == sunday
    assert cron_trigger("0 0 * * sun").get_next_fire_time(None, after) == sunday
