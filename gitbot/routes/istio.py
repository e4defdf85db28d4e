"""Istio `VirtualService`: weights of `spec.http[].route[]`, destinations named by host and subset."""

from __future__ import annotations

import re

from gitbot.routes.kind import RuleLists

VIRTUAL_SERVICE = RuleLists(
    kind="VirtualService",
    group="networking.istio.io",
    source="virtualservice",
    noun="a VirtualService",
    selectors={"subset": "subset", "host": "host"},
    section="http",
    entries="route",
    fields=("host", "name", "subset", "port"),
    destination_key="destination",
    versions=re.compile(r"v1alpha3|v1beta1|v1"),
)
