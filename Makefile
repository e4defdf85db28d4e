# Two entry points: `make demo` runs gitbot's main job on the built-in example,
# `make test` runs the whole suite. Both create everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SYSTEM_TOOLS := /usr/bin/prometheus /usr/bin/promtool /usr/bin/docker-registry /usr/bin/htpasswd

.PHONY: demo test lint unit system-deps venv bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The real servers the tests start. No service is started by the package install:
# policy-rc.d refuses, and the tests launch each server on a free loopback port.
system-deps:
	@missing=0; for t in $(SYSTEM_TOOLS); do [ -x $$t ] || missing=1; done; \
	if [ $$missing = 1 ]; then \
	  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    prometheus docker-registry apache2-utils git >/dev/null; \
	fi

demo: venv
	$(BIN)/gitbot demo

lint: venv
	$(BIN)/ruff check gitbot tests bench
	$(BIN)/ruff format --check gitbot tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: venv
	$(BIN)/pytest tests/unit -q

test: venv system-deps lint
	$(BIN)/pytest -q

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
