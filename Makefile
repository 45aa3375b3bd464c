# The two contract commands are `make run` and `make test`; every target builds .venv first.
# Installs are pinned by constraints.txt, the versions the suite last passed with
# (`make constraints` refreshes it; see README, Development).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench profile migrate constraints clean

$(STAMP): pyproject.toml constraints.txt $(wildcard anonymization/*.pyx)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/consentgate serve

# Two phases, both always run: the unit and HTTP tests on both cores (pytest-xdist; each test
# has its own database, stream and ports), then the end-to-end tests one at a time (they
# start servers, kill processes and measure under load, which a neighbour would disturb).
test: $(STAMP)
	$(BIN)/pytest -q -n 2 --ignore=tests/e2e; unit=$$?; \
	$(BIN)/pytest -q tests/e2e; e2e=$$?; \
	test $$unit -eq 0 -a $$e2e -eq 0

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy tests
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/consentgate bench

profile: $(STAMP)
	$(BIN)/python -m benchmarks.profile

migrate: $(STAMP)
	$(BIN)/consentgate migrate

# Pin what is installed now (after `make test` passed with it).
constraints: $(STAMP)
	$(BIN)/pip freeze --exclude-editable | grep -v '^consentgate' > constraints.txt

# Tools and caches only: var/ holds the database and the KEK, without which every encrypted
# value is lost. Delete it yourself, knowingly, to start from nothing.
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
