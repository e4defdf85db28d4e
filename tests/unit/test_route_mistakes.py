"""A canary that names a destination its route does not have is told which destinations the route has."""

from __future__ import annotations

import pytest

from gitbot.config import Policy
from gitbot.errors import ConfigError
from gitbot.manifests import scan_text
from gitbot.rollout import read_route
from tests.unit.test_rollout import FILE, production, virtual_service

__all__ = ["production"]


def test_a_subset_the_route_lacks_is_named_with_the_destinations_it_has(production: Policy) -> None:
    text = virtual_service(("ga", "90"), ("canary-v2", "10"))
    with pytest.raises(ConfigError) as info:
        read_route(production, 0, scan_text(FILE, text))
    message = info.value.one_line()
    assert "spec.canaries[0].route: " in message, message
    assert "no destination with subset canary" in message, message
    has = f"the route has: host=podinfo,subset=ga ({FILE}:8), host=podinfo,subset=canary-v2 ({FILE}:10)"
    assert has in message, message
