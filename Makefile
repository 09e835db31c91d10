# Parley: `make demo` runs the demo, `make test` runs the tests. See README.md.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-unit lint format services definitions migrate clean

install: $(STAMP)  ## create .venv and install shared, gateway, agent-service, the dev tools and the demo (editable) with the test tools

$(STAMP): requirements-dev.txt shared/pyproject.toml gateway/pyproject.toml agent-service/pyproject.toml deploy/dev/pyproject.toml deploy/demo/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt -e shared -e gateway -e agent-service -e deploy/dev -e deploy/demo
	touch $@

demo: install  ## both services on the sandbox + a terminal chat in which you play the prospect
	bash deploy/scripts/ensure-services.sh rabbitmq
	$(BIN)/python -m parley_demo $(DEMO_ARGS)

services:  ## make sure PostgreSQL and RabbitMQ are running locally
	bash deploy/scripts/ensure-services.sh

test: install services  ## the whole suite against the real PostgreSQL and RabbitMQ
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: install  ## the unit tier only: no PostgreSQL, no RabbitMQ, under a minute
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

lint: install  ## ruff lint and format check, mypy (strict for parley_shared and the domain packages; see pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check shared gateway agent-service tests
	$(BIN)/mypy shared/parley_shared gateway/gateway agent-service/agent_service deploy/dev/parley_dev deploy/demo/parley_demo

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format shared gateway agent-service tests

definitions: install  ## regenerate deploy/rabbitmq/definitions.json from the code
	$(BIN)/python -m parley_shared.topology > deploy/rabbitmq/definitions.json

migrate: install  ## apply both services' migrations to the configured databases
	$(BIN)/python -m gateway migrate
	$(BIN)/python -m agent_service migrate

clean:
	rm -rf $(VENV) data .pytest_cache .hypothesis

.PHONY: catalogue
catalogue: install  ## rebuild the sample businesses' PDFs (needs the DejaVu fonts)
	$(BIN)/python knowledge_base/_source/build_catalogue.py
	$(BIN)/python samples/tazasu/knowledge_base/_source/build_price_list.py

.PHONY: eval
eval: install  ## the agent's evaluation: labelled sets through the agent, accuracy tables (Gemini with GEMINI_API_KEY, else offline; EVAL_ARGS="--failures")
	$(BIN)/python -m evals $(EVAL_ARGS)

.PHONY: bench
bench: install services  ## the benchmarks (not part of make test): prints a table, writes bench/results/latest.json (BENCH_ARGS="--quick" or names)
	$(BIN)/python -m bench --no-services $(BENCH_ARGS)

.PHONY: chaos
chaos: install services  ## the full reliability profile: 2,000 messages under faults, 100 fuzz examples per operation (figures printed; see docs/reliability.md)
	PARLEY_CHAOS_PROFILE=full PARLEY_FUZZ_EXAMPLES=100 $(BIN)/python -m pytest tests/reliability -s -p no:cacheprovider $(PYTEST_ARGS)
