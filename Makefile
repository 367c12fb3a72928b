# The README's commands. `make demo` and `make test` set everything up themselves.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# The Lambda runtime's Python (3.13); pyenv's copy if it is not on PATH.
# (A pyenv shim may exist without working, so each candidate is run, not just found.)
PYTHON313 ?= $(shell for p in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13 /usr/local/bin/python3.13; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { command -v "$$p"; break; }; done)
# Without 3.13 the tools still run on the machine's python3 (3.11 or newer), with a warning.
FALLBACK_PYTHON := $(shell command -v python3)
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

.PHONY: setup demo test soak lint validate build bench clean print-python

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON313)" || echo "warning: no Python 3.13 (the Lambda runtime) found; using $(FALLBACK_PYTHON). Set PYTHON313=/path/to/python3.13 to match Lambda."
	test -x $(PY) || $(or $(PYTHON313),$(FALLBACK_PYTHON)) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(PY) -m tools.demo

test: setup lint validate
	$(PY) -m pytest

# A longer search for counterexamples to the exactly-once promise: thousands of random cases.
soak: setup
	COURTESY_CAMPAIGN=soak $(PY) -m pytest tests/integration/test_exactly_once_campaign.py

lint: setup
	$(VENV)/bin/ruff check src tests sandbox tools bench
	$(VENV)/bin/ruff format --check src tests sandbox tools bench
	$(VENV)/bin/mypy src/handler/courtesy

validate: setup
	$(VENV)/bin/sam validate --lint
	$(VENV)/bin/cfn-lint template.yaml

build: setup
	@test -n "$(PYTHON313)" || { echo "sam build needs python3.13 (the Lambda runtime) on PATH or in PYTHON313"; exit 1; }
	PATH="$(dir $(PYTHON313)):$$PATH" $(VENV)/bin/sam build

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) .aws-sam

print-python:
	@echo $(or $(PYTHON313),$(FALLBACK_PYTHON))
