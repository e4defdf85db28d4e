"""Every kind of latency chart gitbot writes renders with the real Mermaid library in headless Chromium.

The page and a screenshot of it stay in the test's temporary directory for a person to look at.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from gitbot.analysis import CHART_COLOURS, CheckSpec, render_latency_chart
from tests.support.mermaid import mermaid_blocks, render

START = datetime(2026, 1, 5, 12, 9, tzinfo=UTC).timestamp()
LIMITS = (CheckSpec("latency-p99", max=500.0, max_ratio=1.2),)


def points(count: int, value: float, step: float = 15.0, rise: float = 0.0) -> list[tuple[float, float]]:
    return [(START + step * i, value + rise * i) for i in range(count)]


CHARTS = {
    "canary slower than GA, with the limit": render_latency_chart(points(21, 175, rise=12), points(21, 175), LIMITS),
    "both healthy, no latency-p99 check": render_latency_chart(points(21, 175), points(21, 176)),
    "canary only": render_latency_chart(points(21, 175), [], LIMITS),
    "GA only, at 100 percent": render_latency_chart([], points(21, 175), LIMITS),
    "two points": render_latency_chart(points(2, 175), points(2, 170), LIMITS),
    "a long window, thinned": render_latency_chart(points(600, 90, rise=0.5), points(600, 90), LIMITS),
    "a short window, seconds apart": render_latency_chart(points(12, 40, step=5), points(12, 41, step=5), LIMITS),
    "huge and tiny values": render_latency_chart(points(21, 0.2, rise=4000), points(21, 0.1), LIMITS),
}


def test_every_chart_kind_renders_without_a_mermaid_error(tmp_path: Path) -> None:
    names = list(CHARTS)
    blocks = [mermaid_blocks(CHARTS[name]) for name in names]
    assert all(len(found) == 1 for found in blocks), blocks
    results = render([found[0] for found in blocks], tmp_path)
    failed = {name: result.error for name, result in zip(names, results, strict=True) if not result.ok}
    assert failed == {}
    for name, result in zip(names, results, strict=True):
        drawn = re.findall(r'<path[^>]*stroke="(#[0-9a-f]{6})"', result.svg)
        # Each line is drawn in the colour its legend names, in the palette's order.
        legend = CHARTS[name].splitlines()[0]
        wanted = [hex_ for label, (colour, hex_) in CHART_COLOURS.items() if f" in {colour}" in legend]
        assert wanted and [colour for colour in drawn if colour in wanted] == wanted, (name, drawn, legend)
    assert (tmp_path / "screenshot.png").stat().st_size > 10_000


def test_a_broken_chart_is_reported_as_mermaid_error(tmp_path: Path) -> None:
    # The page must be able to fail: Mermaid's own parse error comes back.
    (result,) = render(["xychart-beta\n    line [1, oops]"], tmp_path)
    assert not result.ok and "Parse error" in result.error
