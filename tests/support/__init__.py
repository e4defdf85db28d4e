"""Helpers shared by the test suites: real servers and the data they serve."""
