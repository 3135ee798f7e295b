# Every target installs what it needs first: on a fresh machine `make demo` and `make test` just work.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install install-docker-compose install-prometheus prometheus-rules demo test lint format emulator soak bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

# tests/e2e/test_deploy_files.py validates docker-compose.yml with `docker-compose config`
# (Debian's package; no Docker engine needed). Installed only when missing; sudo unless root.
install-docker-compose:
	@command -v docker-compose >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }

# tests/e2e/test_monitoring.py runs `promtool` (rule unit tests, rule checks) and
# tests/integration/test_prometheus_live.py runs `prometheus`: both come in Debian's package
# `prometheus` (~12 packages, 30 s here; no recommends, so no node exporter). Installed only
# when missing; sudo unless root.
install-prometheus:
	@{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# deploy/prometheus/capi-worker.rules.yaml from the chart's PrometheusRule (default values).
prometheus-rules: $(STAMP)
	$(BIN)/python tests/monitoring.py

demo: $(STAMP)
	$(BIN)/capi-worker demo

test: $(STAMP) install-docker-compose install-prometheus
	$(BIN)/ruff check worker tests
	$(BIN)/ruff format --check worker tests
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check worker tests
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix worker tests
	$(BIN)/ruff format worker tests

emulator: $(STAMP)
	$(BIN)/capi-worker graph-emulator --port 8089 --token 1234567890=local-token

# Soak benchmark (not part of `make test`): 1,000,000 events with 1% poison and Graph faults,
# several minutes; `make soak SOAK_ARGS="--events 200000"` for a shorter one. See bench/soak.py.
soak: $(STAMP)
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

# Throughput and latency figures (not part of `make test`): mapping stage, end to end (500k
# events), scaling (1 and 2 worker processes), latency (5k events/s for 60 s); 3 runs each,
# about 15 minutes. `make bench BENCH_ARGS="--quick"` for a smoke run, `--only e2e` for one part.
bench: $(STAMP)
	$(BIN)/capi-worker bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
