# Two entry points: `make demo` runs gitbot's main job on the built-in example,
# `make test` runs the whole suite. Both create everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SYSTEM_TOOLS := /usr/bin/prometheus /usr/bin/promtool /usr/bin/docker-registry /usr/bin/htpasswd

.PHONY: demo test lint unit system-deps venv bench clean
.PHONY: test-render-deps

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The real servers the tests start. No service is started by the package install: a policy-rc.d that
# refuses is put in place for the install when the machine has none (and removed again, so that later
# installs on this machine behave as before), and the tests launch each server on a free loopback port.
POLICY_RC := /usr/sbin/policy-rc.d

system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do [ -x $$t ] || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "system-deps: missing$$missing; installing prometheus docker-registry apache2-utils git"; \
	  if [ "$$(id -u)" != 0 ]; then echo "system-deps: installing Debian packages needs root (sudo make system-deps)" >&2; exit 1; fi; \
	  created=0; \
	  if [ ! -e $(POLICY_RC) ]; then printf '#!/bin/sh\nexit 101\n' > $(POLICY_RC); chmod +x $(POLICY_RC); created=1; fi; \
	  status=0; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    prometheus docker-registry apache2-utils git >/dev/null; } || status=$$?; \
	  [ $$created = 0 ] || rm -f $(POLICY_RC); \
	  exit $$status; \
	fi

# The charts in commit and pull request bodies are rendered in the tests (tests/render) by the real Mermaid
# library in headless Chromium, as a Markdown viewer would: Debian's chromium, and Mermaid pinned under .cache.
MERMAID_VERSION := 11.12.2
MERMAID_DIR := .cache/mermaid

test-render-deps: $(MERMAID_DIR)/.installed-$(MERMAID_VERSION)
	@[ -x /usr/bin/chromium ] || { \
	  if [ "$$(id -u)" != 0 ]; then echo "test-render-deps: installing chromium needs root (sudo make test-render-deps)" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

$(MERMAID_DIR)/.installed-$(MERMAID_VERSION):
	mkdir -p $(MERMAID_DIR)
	npm install --prefix $(MERMAID_DIR) --no-audit --no-fund --silent mermaid@$(MERMAID_VERSION)
	touch $@

test: test-render-deps

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

# Inputs of the tests that are not in the repository. GitHub's OpenAPI description comes from its npm
# package, pinned and checked by SHA-256 (tests/support/fetch_openapi.py), into the gitignored .test-inputs/
# unless ../shared/github has it; the real-world corpus and the CRD schemas come only from ../shared, and a
# test run names them in its first line when they are missing.
.PHONY: test-inputs
test: test-inputs
test-inputs: venv
	$(BIN)/python -m tests.support.fetch_openapi

bench: venv
	$(BIN)/python -m bench

# The suite measured by coverage, gitbot started as a command by the CLI and daemon tests included
# ([tool.coverage] in pyproject.toml); prints the table and the total. `make test` measures nothing.
# COVERAGE_TESTS narrows the run: make coverage COVERAGE_TESTS=tests/unit
COVERAGE_TESTS ?=
.PHONY: coverage
coverage: venv system-deps test-inputs test-render-deps
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest -q $(COVERAGE_TESTS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report
	@echo "total coverage: $$($(BIN)/coverage report --format=total)%"

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage .coverage.* htmlcov
