# riskctl: `make run` serves the demo, `make test` runs the whole suite.
# Both work from a fresh clone with only Python 3.11, make and git present.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-postgres test-fast lint bench bench-http bench-load bench-history clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/riskctl dev-setup
	$(BIN)/riskctl serve

system-deps:
	@bash .ci/system-deps chromium

test: $(STAMP) system-deps
	$(BIN)/riskctl rules check rules
	$(BIN)/python -m pytest

# The whole suite again, on PostgreSQL (Debian's, started on loopback for the run).
test-postgres: $(STAMP)
	@bash .ci/postgres stop $(CURDIR)/instance/pg-test >/dev/null 2>&1 || true
	rm -rf $(CURDIR)/instance/pg-test
	eval "$$(bash .ci/postgres start $(CURDIR)/instance/pg-test)" && \
	  $(BIN)/python -m pytest -m "not live"; status=$$?; \
	  bash .ci/postgres stop $(CURDIR)/instance/pg-test; exit $$status

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not live and not slow"

lint: $(STAMP)
	$(BIN)/ruff check riskctl detectors api fixtures tests bench
	$(BIN)/mypy

# load (bare Flask vs POST /v1/checks, ~3 min) then cost per check vs stored history (~7 min,
# half of it growing the database and Redis to 1M events)
bench: bench-load bench-history

bench-load: $(STAMP)
	$(BIN)/python bench/bench_load.py

bench-history: $(STAMP)
	$(BIN)/python bench/bench_history.py

bench-http: $(STAMP)
	$(BIN)/python bench/bench_http.py

# the slowest checks under open-loop load beside steal, I/O pressure and the workers' kernel stacks (~1.5 min)
bench-tail: $(STAMP)
	$(BIN)/python bench/bench_tail.py

clean:
	rm -rf $(VENV) instance .pytest_cache
