"""Contract tests: each adapter against a real or faithful server on loopback."""
