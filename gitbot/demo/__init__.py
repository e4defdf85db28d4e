"""`gitbot demo`'s machinery: a sandbox, a simulated cluster and the real reconcile cycle on a fast clock.

A composition root (like `gitbot.commands`): it may build adapters. `story.run_demo` is the entry point.
The sources that stand in for a real world live here too, not among the adapters: `builtin` (in-memory
registry, metrics and clock), `localservers` (Debian's registry and Prometheus as child processes) and
`localgit` (bare repositories and a workspace whose commits follow the demo's clock).
"""
