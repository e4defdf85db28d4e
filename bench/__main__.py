"""Run every benchmark (`bench/bench_*.py` and the fault sweep `bench/faults.py`) in turn, or one by name.

`python -m bench` runs them all; `python -m bench NAME [ARGS...]` runs one (`tags`, `scan`, `faults`, ...),
passing ARGS to the fault sweep. The exit status is 1 when the fault sweep found a failed case.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

FAULTS = "faults"


def names() -> list[str]:
    here = Path(__file__).resolve().parent
    found = (m.name for m in pkgutil.iter_modules([str(here)]))
    return sorted(name for name in found if name.startswith("bench_") or name == FAULTS)


def run(name: str, args: Sequence[str] = ()) -> int:
    module = importlib.import_module(f"bench.{name}")
    status = module.main(list(args)) if name == FAULTS else module.main()
    return int(status or 0)


def run_all() -> int:
    status = 0
    for name in names():
        print(f"== {name}")
        status |= run(name)
    return status


def main(argv: Sequence[str]) -> int:
    if not argv:
        return run_all()
    wanted = argv[0]
    name = wanted if wanted in names() else f"bench_{wanted}"
    if name not in names():
        print(f"unknown benchmark {wanted!r}; known: {', '.join(names())}", file=sys.stderr)
        return 2
    return run(name, argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
