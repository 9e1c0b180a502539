# `make test` is the one command that checks everything: it builds .venv, installs jitpam with its
# dev tools, then runs the linters, the type checker, the layering contracts and the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: test demo bench fuzz soak install system-packages lint typecheck contracts pytest clean

test: install system-packages lint typecheck contracts pytest

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The demo server: SQLite under ./jitpam-data, organization "contoso", on http://127.0.0.1:8000.
demo: install
	$(BIN)/jitpam serve --demo --data-dir ./jitpam-data

# Every benchmark, one table (bench/run.py; needs PostgreSQL on 127.0.0.1:5432 as the tests do).
# Run it on an otherwise idle machine; `make bench BENCH_ARGS=--quick` only shows it runs.
bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Schemathesis over the OpenAPI document with many cases an operation, unseeded (the suite runs
# a few, derandomized): real servers on SQLite, and on PostgreSQL when JITPAM_TEST_DATABASE_URL
# is set. `make fuzz FUZZ_EXAMPLES=500` for more.
FUZZ_EXAMPLES ?= 100
fuzz: install
	JITPAM_FUZZ=1 JITPAM_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/e2e/test_api_schema.py \
		--no-cov -p no:randomly -q

# The soak: minutes of mixed load against real servers with faults injected (kill -9 and restart,
# PostgreSQL's pg_terminate_backend), then what was acknowledged against what was kept, the audit
# chain and server memory (tests/soak.py). Not part of `make test`.
# `make soak SOAK_ARGS="--minutes 3 --db postgresql"`; the default is 5 minutes on SQLite.
soak: install
	$(BIN)/python -m tests.soak $(SOAK_ARGS)

install: $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'

# Debian packages the tests run: Chromium for the browser tests (Playwright's own browser download
# is not used), slapd and ldap-utils for the LDAP connector's tests (each test run starts its own
# slapd with its own configuration; the package's default one is not used).
SYSTEM_PACKAGES := chromium slapd ldap-utils
system-packages:
	@missing="$$(for p in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done)"; \
	test -z "$$missing" || { \
		echo "installing Debian's" $$missing "for the tests"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; }

lint:
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck:
	$(BIN)/mypy

contracts:
	$(BIN)/lint-imports

pytest:
	$(BIN)/pytest --cov --cov-report=term:skip-covered

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage
