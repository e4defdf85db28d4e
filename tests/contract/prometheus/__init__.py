"""Contract tests of analysis and the Prometheus adapter against a real Prometheus on loopback."""
