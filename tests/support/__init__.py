"""Test-side support: loopback servers and checkers that tests import (never gitbot itself)."""
