# PIE developer commands. `make run` and `make test` build/refresh the virtualenv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
PIE_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

.PHONY: venv run demo test lint typecheck unit chaos fuzz docs clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: venv
	@$(BIN)/pie db upgrade
	@token=$$($(BIN)/pie token --admin --subject local-admin --ttl 86400) && \
	  echo "" && \
	  echo "PIE is starting on http://$(HOST):$(PORT) (SQLite in $${PIE_DATA_DIR:-./.pie}, local auth)." && \
	  echo "Admin token (valid 24 h); for the README's examples paste:" && \
	  echo "  export PIE_URL=http://$(HOST):$(PORT) PIE_TOKEN=$$token" && \
	  echo "Try it:" && \
	  echo "  curl -s -H 'Authorization: Bearer $$token' http://$(HOST):$(PORT)/v2/clients" && \
	  echo "Or, in a second terminal, run the guided demo: make demo" && \
	  echo ""
	$(BIN)/pie serve --host $(HOST) --port $(PORT)

# The guided tour of a full flow, against the server `make run` started (see README).
demo: venv
	$(BIN)/pie demo --url http://$(HOST):$(PORT)

lint: venv
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests
	cd bench && ../$(BIN)/ruff format --check --config ruff.toml . && ../$(BIN)/ruff check --config ruff.toml .
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

unit: venv
	PIE_TEST_POSTGRES_URL=$(PIE_TEST_POSTGRES_URL) $(BIN)/pytest -n 2 $(PYTEST_ARGS)

# Kills processes and restarts the machine's PostgreSQL: run it alone (see docs/reliability.md).
chaos: venv
	PIE_CHAOS=1 PIE_TEST_POSTGRES_URL=$(PIE_TEST_POSTGRES_URL) $(BIN)/pytest -s tests/chaos

# Schema fuzzing at volume: every schemathesis phase, both backends, admin and tenant tokens,
# >= 5,000 requests per backend, a fresh seed (replay one with PIE_FUZZ_SEED=...). make test
# runs the same tests as a short deterministic slice.
PIE_FUZZ_EXAMPLES ?= 30
fuzz: venv
	PIE_FUZZ=1 PIE_FUZZ_EXAMPLES=$(PIE_FUZZ_EXAMPLES) PIE_TEST_POSTGRES_URL=$(PIE_TEST_POSTGRES_URL) \
	  $(BIN)/pytest -p no:xdist tests/fuzz/test_schema.py $(PYTEST_ARGS)

test: lint typecheck unit

# PIE side by side with its peers under wrk (bench/README.md): full <= 20 min, QUICK=1 <= 4 min.
QUICK ?=
bench: venv
	$(BIN)/python bench/run.py $(if $(QUICK),--quick,)

docs: venv
	$(BIN)/python -m pie.settings > docs/configuration.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
