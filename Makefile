# Self-documenting: `make help` lists every target with its description.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
# Trust the machine's certificate store (corporate proxies re-sign registry traffic).
export UV_SYSTEM_CERTS ?= 1
export UV_PYTHON ?= python3.11
export DAGSTER_HOME := $(CURDIR)/dagster_home
export PYTHONUNBUFFERED := 1

UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
SIM_HOST ?= 127.0.0.1
SIM_PORT ?= 9100
SIM_SYMBOLS ?= BTCUSDT,ETHUSDT
# The venues whose instruments `make run`, `make sidecar` and `make sim` trade on the simulator
# (binance, binance_futures, coinbase, kraken; comma separated).
VENUES ?= binance
SIDECAR_PORT ?= 8700
MLFLOW_PORT ?= 5000
DAGSTER_PORT ?= 3000
HISTORY_DAYS ?= 3
# MARKET=sim (default): the project's exchange simulator (REPLAY=path/to/recording.txt.gz replays a
# recorded session on its live stream); MARKET=binance: Binance's real public endpoints.
MARKET ?= sim
REPLAY ?=
DATA_DIR := $(or $(TRADING_DATA_DIR),$(CURDIR)/dagster_home/data)
# Where the simulator stands in for every venue (Binance spot at its root, Binance futures under
# /fapi, Coinbase under /coinbase, Kraken under /kraken/v2); the sidecar and the bulk ingest read
# these, and trade its symbols at each of VENUES as that venue spells them (BTCUSDT:
# BINANCE:BTCUSDT, COINBASE:BTC-USD, KRAKEN:BTC/USD). The simulator's market has a planted edge,
# so its models are judged by the full gate, P&L included.
# SIM_INSTRUMENTS is worked out by streaming/simulator/instruments.py with the locked
# environment's interpreter, once, where a recipe first uses it: recipes run after `bootstrap`
# has made that environment, and targets that do not use it (help, lint) never run it.
SIM_INSTRUMENTS = $(eval SIM_INSTRUMENTS := $(call sim_instruments))$(SIM_INSTRUMENTS)
sim_instruments = $(if $(wildcard $(PYTHON)),,$(error $(PYTHON) is missing: run `make bootstrap`))$\
	$(call checked,$(shell $(PYTHON) -W ignore -m streaming.simulator.instruments \
	  $(VENUES) $(SIM_SYMBOLS) 2>&1),VENUES=$(VENUES) SIM_SYMBOLS=$(SIM_SYMBOLS))
# The cross-venue pairs of those instruments (TRADING_CROSS_PAIRS): each other venue's against
# Binance spot's, which leads in the simulator; worked out after SIM_INSTRUMENTS, which checks.
SIM_CROSS_PAIRS = $(eval SIM_CROSS_PAIRS := $(shell $(PYTHON) -W ignore -m \
	streaming.simulator.instruments --pairs $(VENUES) $(SIM_SYMBOLS)))$(SIM_CROSS_PAIRS)
# $(1), the output of the $(shell) just run, if it succeeded; else stop with $(2) and the output.
checked = $(if $(filter 0,$(.SHELLSTATUS)),$(1),$(error $(2): $(strip $(patsubst streaming.simulator.instruments:,,$(1)))))
SIM_ENV = BINANCE_BULK_BASE_URL=http://$(SIM_HOST):$(SIM_PORT) \
	BINANCE_REST_BASE_URL=http://$(SIM_HOST):$(SIM_PORT) \
	BINANCE_WS_BASE_URL=ws://$(SIM_HOST):$(SIM_PORT) \
	BINANCE_FUTURES_WS_BASE_URL=ws://$(SIM_HOST):$(SIM_PORT)/fapi \
	COINBASE_WS_URL=ws://$(SIM_HOST):$(SIM_PORT)/coinbase \
	KRAKEN_WS_URL=ws://$(SIM_HOST):$(SIM_PORT)/kraken/v2 \
	TRADING_INSTRUMENTS=$(SIM_INSTRUMENTS) \
	TRADING_CROSS_PAIRS=$(SIM_CROSS_PAIRS)
MARKET_ENV = $(if $(filter binance,$(MARKET)),,$(SIM_ENV))
# `make run`'s processes run under one launcher (trading_assets/launcher.py) with the locked
# environment's interpreter itself: no `uv run` in between, so each process gets its signals.
PYTHON := .venv/bin/python

.PHONY: help bootstrap servers services run run-prod sim sidecar test lint format bench check-defs clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(UV):
	@echo "uv not found: installing it with pip"
	python3 -m pip install --quiet --user uv || \
	  python3 -m pip install --quiet --user --break-system-packages uv
	@mkdir -p $(dir $(UV))
	@test -x $(UV) || ln -sf "$$(python3 -c 'import uv; print(uv.find_uv_bin())')" $(UV)

.venv/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-groups
	@touch $@

bootstrap: .venv/.synced ## Install uv (if missing) and the locked environment

# Tests start their own private servers from these binaries (PostgreSQL 15 ships with the image).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
servers: ## Install the servers the production profile runs when absent (redis-server)
	@command -v redis-server >/dev/null || { \
	  echo "redis-server not found: installing it with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

services: servers ## Install what tests use when absent (redis-server, Prometheus and promtool, Chromium)
	@command -v chromium >/dev/null || { \
	  echo "chromium not found: installing Debian's with apt-get (the browser test drives it)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	@{ command -v prometheus && command -v promtool; } >/dev/null || { \
	  echo "prometheus not found: installing Debian's with apt-get (the alert tests run it and promtool)"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# TRADING_ENV=prod make run is make run-prod.
PROFILE ?= $(if $(filter prod,$(TRADING_ENV)),prod,local)
PROD_DATA_DIR ?= $(CURDIR)/dagster_home/prod

run: bootstrap ## Run the whole system on embedded defaults (market, Dagster, MLflow UI, sidecar)
	@mkdir -p $(DAGSTER_HOME) $(DATA_DIR)/mlflow
	@$(PYTHON) -m trading_assets.launcher --profile $(PROFILE) --market $(if $(filter binance,$(MARKET)),binance,sim) \
	  --sim-host $(SIM_HOST) --sim-port $(SIM_PORT) --symbols $(SIM_SYMBOLS) \
	  $(if $(REPLAY),--replay $(REPLAY)) --dagster-port $(DAGSTER_PORT) \
	  --sidecar-port $(SIDECAR_PORT) --mlflow-port $(MLFLOW_PORT) \
	  --history-days $(HISTORY_DAYS) \
	  --data-dir $(if $(filter prod,$(PROFILE)),$(PROD_DATA_DIR),$(DATA_DIR)) \
	  $(foreach pair,$(MARKET_ENV),--market-env $(pair))

run-prod: bootstrap servers ## Run the whole system on PostgreSQL, Redis, S3 and an MLflow server
	@$(MAKE) --no-print-directory run PROFILE=prod

sim: bootstrap ## Run only the exchange simulator (synthetic market; VENUES=binance,coinbase)
	@echo "SIM_INSTRUMENTS=$(SIM_INSTRUMENTS)"
	$(UV) run --frozen trading-sim --host $(SIM_HOST) --port $(SIM_PORT) --symbols $(SIM_SYMBOLS)

sidecar: bootstrap ## Run only the streaming sidecar (against `make sim`, or MARKET=binance)
	$(MARKET_ENV) $(UV) run --frozen python -m streaming --port $(SIDECAR_PORT)

test: bootstrap services ## Run the test suite (unit, dagster, integration)
	$(UV) run --frozen pytest -q $(PYTEST_ARGS)

lint: bootstrap ## ruff + pyright + Dagster definitions check
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen pyright
	$(MAKE) --no-print-directory check-defs

check-defs: bootstrap ## Validate that the Dagster definitions load (dg check defs)
	$(UV) run --frozen dg check defs

format: bootstrap ## Apply ruff's formatting and autofixes
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

bench: bootstrap ## Run benchmarks and print comparison tables (no timing asserts)
	$(UV) run --frozen python -m bench $(BENCH_ARGS)

clean: ## Remove local state (Dagster storage, warehouse, caches)
	find dagster_home -mindepth 1 ! -name 'dagster*.yaml' -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache
