# Two entry points (see README): `make run` and `make test`. Everything else is their set-up.
PORT ?= 8080
HOST ?= 127.0.0.1
# Python 3.12 (pyenv reads .python-version; a plain python3.12 on PATH works too).
PYTHON ?= $(shell command -v python3.12 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# mpt-cli pins an older mpt-api-client than the tests use, so it lives in a venv of its own.
CLI_VENV := .venv-mptcli

.PHONY: run test lint install install-test browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(CLI_VENV)/bin/mpt-cli:
	$(PYTHON) -m venv $(CLI_VENV)
	$(CLI_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CLI_VENV)/bin/pip install --quiet 'mpt-cli>=6,<7'

install: $(VENV)/.installed

# Browser tests drive Debian's Chromium (Playwright's own browser download cannot work here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "chromium is missing: install Debian's chromium package for the browser tests"; fi; }

install-test: $(VENV)/.installed-test $(CLI_VENV)/bin/mpt-cli browser bench-tools

run: install
	$(BIN)/tokenhouse migrate
	$(BIN)/tokenhouse bootstrap --if-empty
	$(BIN)/tokenhouse serve --host $(HOST) --port $(PORT)

# pytest exits 5 when a selection collects no test; that is not a failure of the code.
test: install-test
	MPT_CLI=$(abspath $(CLI_VENV)/bin/mpt-cli) $(BIN)/python -m pytest $(PYTEST_ARGS); \
	rc=$$?; if [ $$rc -eq 5 ]; then exit 0; else exit $$rc; fi

# Types (mypy, strict) and style (ruff) of the source; ruff also reads the tests.
lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(CLI_VENV) .pytest_cache test-output

# Load benchmark (see bench/README.md; the package bench/, entry point bench/run.py): `make bench`,
# `make bench BENCH_ARGS=--small`, `make bench BENCH_ARGS='--smoke --database sqlite'`,
# `BENCH_ARGS='--small --scenarios healthz,read-cold,read-mix'`. Drives the server with Debian's wrk.
.PHONY: bench bench-tools

bench-tools:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; \
	  else echo "wrk is missing: install Debian's wrk package for the benchmark"; fi; }

bench: install bench-tools
	$(BIN)/python bench/run.py $(BENCH_ARGS)
