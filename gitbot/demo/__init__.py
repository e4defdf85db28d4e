"""`gitbot demo`'s machinery: a sandbox, a simulated cluster and the real reconcile cycle on a fast clock.

A composition root (like `gitbot.commands`): it may build adapters. `story.run_demo` is the entry point.
"""
