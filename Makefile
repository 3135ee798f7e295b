# Every target installs what it needs first: on a fresh machine `make demo` and `make test` just work.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The mapping (and setup.py's COMPILED_MODULES) compiled with mypyc: written by a successful
# build, with the digest of every compiled source; rebuilt in place whenever one of them changes.
COMPILED_RECORD  := worker/_compiled.json
COMPILED_SOURCES := $(filter-out %/__init__.py,$(wildcard worker/mapping/*.py)) \
	$(wildcard worker/mapping/*.c) \
	$(shell $(PYTHON) -c 'import ast, sys; tree = ast.parse(open("setup.py").read()); print(*next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "COMPILED_MODULES"))')
# What `make test` must find: the compiled build, or with CAPI_WORKER_PURE_PYTHON=1 the pure one.
EXPECTED_BUILD := $(if $(filter-out 0,$(CAPI_WORKER_PURE_PYTHON)),pure Python,compiled)

.PHONY: install install-openssl-headers install-docker-compose install-prometheus prometheus-rules demo test lint format emulator soak bench clean

# Editable install (the tests import the source tree), then the mapping compiled in place:
# the compiled modules sit beside their sources and win the import unless
# CAPI_WORKER_PURE_PYTHON=1 (worker/compiled.py). CAPI_WORKER_COMPILE=required: here a failed
# compile is an error, where a user's `pip install .` falls back to pure Python with a warning.
$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip 'setuptools>=68'
	CAPI_WORKER_COMPILE=0 $(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(COMPILED_RECORD): $(STAMP) setup.py $(COMPILED_SOURCES) worker/mapping | install-openssl-headers
	CAPI_WORKER_COMPILE=required $(BIN)/python setup.py --quiet build_ext --inplace >/dev/null

install: $(STAMP) $(COMPILED_RECORD)

# worker/mapping/_sha256_openssl.c (the compiled mapping's SHA-256) includes OpenSSL's headers
# and links libcrypto: Debian's libssl-dev, installed only when a test program does not build;
# sudo unless root. (Required here; a user's `pip install .` builds without it, see setup.py.)
install-openssl-headers:
	@printf '#include <openssl/sha.h>\nint main(void) { return SHA256_DIGEST_LENGTH != 32; }\n' \
	  | $${CC:-cc} -x c - -o /dev/null -lcrypto >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev >/dev/null; }

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

demo: install
	$(BIN)/capi-worker demo

test: install install-docker-compose install-prometheus
	$(BIN)/ruff check worker tests
	$(BIN)/ruff format --check worker tests
	$(BIN)/mypy
	$(BIN)/lint-imports
	CAPI_WORKER_EXPECTED_BUILD="$(EXPECTED_BUILD)" $(BIN)/pytest

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
# several minutes; `make soak SOAK_ARGS="--events 200000"` for a shorter one. See worker/bench/soak.py.
soak: install
	$(BIN)/capi-worker bench --only soak $(SOAK_ARGS)

# Throughput and latency figures (not part of `make test`): mapping stage, end to end (500k
# events), scaling (1 and 2 worker processes), latency (5k events/s for 60 s); 3 runs each,
# about 15 minutes. `make bench BENCH_ARGS="--quick"` for a smoke run, `--only e2e` for one part.
bench: install
	$(BIN)/capi-worker bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .hypothesis *.egg-info build
	find worker -name '*.so' -delete
	rm -f $(COMPILED_RECORD)
