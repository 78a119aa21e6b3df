# Two commands do all set-up: `make demo` (install + offline demo) and `make test` (lint, types, tests).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install demo test lint typecheck unit sample-book studio clean bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) scripts/check_supply_chain.py
	touch $@

demo: install
	$(VENV)/bin/csm demo

lint: install
	$(VENV)/bin/ruff check src tests scripts bench
	$(VENV)/bin/ruff format --check src tests scripts bench

typecheck: install
	$(VENV)/bin/mypy src

unit: install
	$(VENV)/bin/pytest

test: lint typecheck unit

# LangGraph Studio: the local API server for the graphs in langgraph.json (offline; open the Studio URL it prints).
STUDIO_PORT ?= 2024
studio: install
	LANGGRAPH_CLI_NO_ANALYTICS=1 LANGSMITH_TRACING=false $(VENV)/bin/langgraph dev --no-browser --port $(STUDIO_PORT)

# Benchmarks (not tests): every bench module in fresh processes, then rewrite bench/RESULTS.md (< 10 min on 2 cores,
# plus ~15 min for bench.distributed when PostgreSQL, Redis and RabbitMQ answer).
bench: install
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	$(PY) -m bench.run_all

sample-book: install
	$(PY) scripts/generate_sample_book.py

clean:
	rm -rf $(VENV) .csm-data .mypy_cache .ruff_cache .pytest_cache
