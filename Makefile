# Driftline: every set-up step lives here, so a fresh clone needs one command.
#   make demo   - the closed-loop demo (starts a local Kafka broker for you)
#   make test   - lint, type-check and the whole test suite against a real broker
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test-deps test lint unit integration demo broker-up broker-down clean bench-quick lock

# System packages (Debian), each command only what it uses: the demo needs Java, Maven
# (fetches the Kafka jars) and Python; the tests add kcat, xxd, openssl, Prometheus,
# Alertmanager, Chromium and PostgreSQL (test-deps). One line per step; apt's output in .cache/bootstrap.log.
$(STAMP): pyproject.toml requirements.lock
	bash infra/bootstrap.sh --for demo
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)
	bash infra/kafka/fetch.sh

# Every Python file of the tree: ruff over all of them; mypy (strict) over the package,
# which reaches streams/ and consumers/ through driftline/streams and driftline/consumers,
# and over bench/, examples/ and infra's helper (pyproject's [tool.mypy] files); tests/
# not yet (see pyproject).
PY_DIRS := driftline streams consumers tests bench examples infra

test-deps:
	bash infra/bootstrap.sh --for test --quiet

lint: $(STAMP)
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/mypy

unit: $(STAMP) test-deps
	$(BIN)/pytest tests/unit driftline/core

integration: setup test-deps
	$(BIN)/pytest tests/integration

# The whole suite: session fixtures start a broker and a PostgreSQL server in temp dirs
# and stop them.
test: setup test-deps lint
	$(BIN)/pytest

# The benchmarks' quick modes (small sizes; no speed is asserted). `make test` runs the
# loop and fault ones too (tests/integration/test_benches.py, test_faults.py, and on
# three nodes test_cluster.py). Each
# bench is one line; see docs/benchmarks.md for the full runs.
bench-quick: setup
	$(BIN)/python bench/throughput.py --quick
	$(BIN)/python -m bench.loop --quick
	$(BIN)/python -m bench.faults --quick
	$(BIN)/python -m bench.gate_trial --quick
	$(BIN)/python -m bench.faults --quick --brokers 3
	$(BIN)/python bench/replication.py --quick

demo: setup
	$(BIN)/driftline demo

broker-up: setup
	$(BIN)/driftline broker up

broker-down:
	$(BIN)/driftline broker down

# Refresh requirements.lock from pyproject.toml's ranges (newest releases), in a
# throw-away virtualenv; commit it on its own, after the suite passed on it.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	{ sed -n '1,3p' requirements.lock; .lock-venv/bin/pip freeze --exclude-editable; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lock-venv

clean:
	-$(BIN)/driftline broker down --purge
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache
