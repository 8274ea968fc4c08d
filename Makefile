# eshybrid — everything a fresh machine needs is installed from here.
#   make demo   the main job end to end on the embedded default (local cluster, sample catalogue, CPU embeddings)
#   make test   unit + integration tests against real Elasticsearch / OpenSearch servers and a real Ray Serve
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := nginx openssl docker-compose maven gcc chromium
export RAY_USAGE_STATS_ENABLED := 0
export RAY_AUTH_MODE := disabled
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
PYTEST_ARGS ?=

.PHONY: install system-deps lint format test test-unit test-integration test-es8-client test-multinode demo demo-down bench clean help

help:
	@echo "make demo | make test | make lint | make bench | make demo-down | make clean"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[serve,openvino,eval,dev]'
	@touch $@

install: $(STAMP) system-deps

# The elasticsearch 8.x client (the main venv has 9.x): the official-client contract tests also run through it
# against the ES 8 server. A small overlay (the client and its elastic-transport 8.x only), put first on PYTHONPATH.
ES8_OVERLAY := .venv-es8
$(ES8_OVERLAY)/.installed: pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install -q --no-deps --upgrade --target $(ES8_OVERLAY) 'elasticsearch>=8.13,<9' 'elastic-transport>=8.15,<9'
	@touch $@

# Debian packages the tests use (nginx as a TLS proxy, docker-compose to validate compose files, chromium for the
# workbench's browser tests).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "warning: missing Debian packages:$$missing (install them as root)"; fi; \
	fi

# The gate: ruff (lint + format check), mypy (strict on the public API packages), import-linter (layer contracts).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install $(ES8_OVERLAY)/.installed
	$(BIN)/python -m pytest tests $(PYTEST_ARGS); rc=$$?; if [ $$rc = 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc
	$(MAKE) test-es8-client

# The official-client contract tests through the elasticsearch 8.x client, against the ES 8 server.
test-es8-client: install $(ES8_OVERLAY)/.installed
	PYTHONPATH=$(ES8_OVERLAY) $(BIN)/python -m pytest tests/integration/test_official_clients.py -m es8 $(PYTEST_ARGS)

# Faults across nodes (tests/integration/test_multinode_faults.py): a three-node Elasticsearch (three 320 MB JVMs)
# and a two-node Ray of their own, started and stopped by the session's fixtures; a few minutes. Elasticsearch only:
# a three-node OpenSearch as well would double the JVMs for the same job code paths (`cluster up --nodes 3
# --flavor opensearch` works; its unit tests cover the config it renders).
test-multinode: install
	$(BIN)/python -m pytest tests/integration/test_multinode_faults.py -m multinode $(PYTEST_ARGS)

test-unit: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

demo: install
	$(BIN)/python -m connector.demo up

demo-down:
	@test -x $(BIN)/python && $(BIN)/python -m connector.demo down || true

bench: install
	$(BIN)/python bench/embed_throughput.py
	$(BIN)/python bench/backfill_throughput.py
	$(BIN)/python bench/hybrid_quality.py
	$(BIN)/python bench/search_latency.py
	$(BIN)/python bench/rerank_latency.py
	$(BIN)/python bench/passages.py
	$(BIN)/python bench/image_throughput.py
	$(BIN)/python bench/observe_overhead.py
	$(BIN)/python bench/bulk_write.py --multinode
	$(BIN)/python bench/soak.py
	$(BIN)/python bench/train.py

clean: demo-down
	rm -rf $(VENV) $(ES8_OVERLAY) build *.egg-info
