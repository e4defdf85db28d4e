"""A notification receiver that drips its answer is cut at the post's deadline, however long each read may
wait: logged once with the receiver's host (never the URL), not tried again, never raised into the cycle."""

from __future__ import annotations

import logging

import pytest

from gitbot.adapters.notify import POST_DEADLINE, SlackNotifier, WebhookNotifier
from tests.contract.notify.test_notify import SECRET_PATH, notice, problems
from tests.support.drip import DripServer


@pytest.mark.parametrize("mode", ["headers", "body"])
def test_a_dripping_receiver_is_cut_at_the_deadline_and_not_retried(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    requests: list[tuple[str, str]] = []
    with DripServer(mode=mode) as drip, caplog.at_level(logging.WARNING, logger="gitbot"):
        notifier = SlackNotifier(
            drip.url + SECRET_PATH, timeout=5, deadline=0.5, retry_delay=0.01, on_request=lambda *r: requests.append(r)
        )
        notifier.notify(notice("rollback", "podinfo rolled back"))
    assert problems(caplog) == [f"no complete answer from {drip.host} within 0.5 s; cut off"]
    assert requests == [("slack", "transport-error")]
    assert len(drip.dripped) == 1
    # Cut long before the 2,000 bytes the server meant to drip (one every 0.05 s, 5 s per read allowed).
    assert drip.sent < 200
    assert "Zq9SecretWebhookToken" not in caplog.text


def test_an_answer_within_the_deadline_is_taken_as_it_is(caplog: pytest.LogCaptureFixture) -> None:
    assert POST_DEADLINE == 10.0
    with DripServer(drips=lambda _method, _path: False) as quick, caplog.at_level(logging.WARNING, logger="gitbot"):
        # A receiver that answers at once (404 here) is not cut: the deadline only ends what runs past it.
        WebhookNotifier(quick.url + "/hook", deadline=0.5, retry_delay=0.01).notify(notice("rollback", "r"))
    assert problems(caplog) == ["HTTP 404"]
    assert quick.dripped == []
