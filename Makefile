# Two entry points for operators and developers:
#   make run   - install into .venv and serve on :8080 with livekit-server --dev defaults
#   make test  - install the test tool chain and run every check and test
# Both work on a fresh Debian machine with Python 3.11 or newer.

PYTHON ?= python3
VENV ?= .venv
SYNAPSE_VENV ?= $(VENV)/synapse
PIP_FLAGS ?= --quiet --disable-pip-version-check

.PHONY: run doctor test lint typecheck pytest bench install install-test system-deps clean

$(VENV)/.installed: pyproject.toml
	scripts/ensure-venv-support $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/pip install $(PIP_FLAGS) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(VENV)/bin/pip install $(PIP_FLAGS) -e '.[test]'
	touch $@

# Synapse lives in a venv of its own so that its pins never shape ours.
$(SYNAPSE_VENV)/.installed:
	$(PYTHON) -m venv $(SYNAPSE_VENV)
	$(SYNAPSE_VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(SYNAPSE_VENV)/bin/pip install $(PIP_FLAGS) 'matrix-synapse>=1.100,<2'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test $(SYNAPSE_VENV)/.installed system-deps

system-deps:
	scripts/ensure-system-deps

run: install
	scripts/run-dev $(VENV)/bin/matrixrtc-auth

# The doctor with exactly the environment `make run` gives the service.
doctor: install
	scripts/run-dev $(VENV)/bin/matrixrtc-auth doctor

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: $(VENV)/.installed-test
	$(VENV)/bin/mypy

pytest: install-test
	MATRIXRTC_TEST_SYNAPSE_PYTHON=$(CURDIR)/$(SYNAPSE_VENV)/bin/python \
		$(VENV)/bin/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: install-test
	$(VENV)/bin/python -m bench.load $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
