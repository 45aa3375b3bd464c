# The two contract commands are `make run` and `make test`; every target builds .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench profile migrate clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/consentgate serve

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/consentgate bench

profile: $(STAMP)
	$(BIN)/python -m benchmarks.profile

migrate: $(STAMP)
	$(BIN)/consentgate migrate

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
