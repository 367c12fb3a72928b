# The README's commands. `make demo` and `make test` set everything up themselves.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# The Lambda runtime's Python (3.13); pyenv's copy if it is not on PATH.
PYTHON313 ?= $(shell command -v python3.13 2>/dev/null || ls /root/.pyenv/versions/3.13*/bin/python3.13 2>/dev/null | head -n1)
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

.PHONY: setup demo test unit integration lint validate build bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON313)" || { echo "Python 3.13 is needed (the Lambda runtime): install python3.13 or set PYTHON313=/path/to/python3.13"; exit 1; }
	test -x $(PY) || $(PYTHON313) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(PY) -m tools.demo

test: setup lint validate
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check src tests sandbox tools
	$(VENV)/bin/ruff format --check src tests sandbox tools
	$(VENV)/bin/mypy src/handler/courtesy

validate: setup
	$(VENV)/bin/sam validate --lint
	$(VENV)/bin/cfn-lint template.yaml

build: setup
	PATH="$(dir $(PYTHON313)):$$PATH" $(VENV)/bin/sam build

clean:
	rm -rf $(VENV) .aws-sam
