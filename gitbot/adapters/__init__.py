"""Adapters: the one real implementation of each port in `gitbot.ports`, each wrapping one library."""
