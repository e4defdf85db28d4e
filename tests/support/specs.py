"""Analysis specs reduced for tests: a check or an analysis without its comparisons to GA.

gitbot judges a canary at full weight with `judge_full_weight` and drops no comparison itself; tests use
these to judge the canary's own figures alone.
"""

from __future__ import annotations

from dataclasses import replace

from gitbot.analysis import AnalysisSpec, CheckSpec


def absolute(check: CheckSpec) -> CheckSpec | None:
    """`check` without its comparisons to GA; None when nothing absolute is left."""
    if check.sequential:
        return None
    if check.name == "custom":
        return None if check.compares else check
    if check.min is None and check.max is None:
        return None
    return replace(check, max_ratio=None, max_drop=None)


def canary_only(spec: AnalysisSpec) -> AnalysisSpec:
    """The analysis without comparisons to GA (for a canary at 100 percent, when GA gets no traffic)."""
    kept = tuple(c for c in (absolute(check) for check in spec.checks) if c is not None)
    return replace(spec, checks=kept)
