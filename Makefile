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

.PHONY: setup demo test soak lint validate scan build replay bench clean print-python

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON313)" || echo "warning: no Python 3.13 (the Lambda runtime) found; using $(FALLBACK_PYTHON). Set PYTHON313=/path/to/python3.13 to match Lambda."
	test -x $(PY) || $(or $(PYTHON313),$(FALLBACK_PYTHON)) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(PY) -m tools.demo

# The suite on two workers (pytest-xdist), handed one test at a time so the campaign's
# long cases spread over both; TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --maxschedchunk 1

test: setup lint validate
	$(PYTEST)

# A longer search for counterexamples to the exactly-once promise: thousands of random cases.
soak: setup
	COURTESY_CAMPAIGN=soak $(PYTEST) tests/integration/test_exactly_once_campaign.py

lint: setup
	$(VENV)/bin/ruff check src cli tests sandbox tools bench
	$(VENV)/bin/ruff format --check src cli tests sandbox tools bench
	$(VENV)/bin/mypy src/handler/courtesy cli/courtesy_cli tests/unit/fakes.py

validate: setup scan
	$(VENV)/bin/sam validate --lint
	$(VENV)/bin/cfn-lint template.yaml

# The IaC security scan (checkov), offline. checkov pins boto3 and packaging versions
# that conflict with aws-sam-cli's and pytest's, so it has its own virtualenv inside
# .venv (make clean removes it). It scans template.yaml as written and as SAM
# translates it, so the roles SAM generates are checked too. A justified suppression
# is a Metadata "checkov: skip" entry next to its resource in template.yaml.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := $(VENV)/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

$(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION):
	rm -rf $(CHECKOV_VENV)
	$(or $(PYTHON313),$(FALLBACK_PYTHON)) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

# SAM's own translation (as `sam validate` does it), offline: no AWS call.
define SAM_TRANSLATE
import sys
from samcli.lib.translate.sam_template_validator import SamTemplateValidator
from samcli.yamlhelper import yaml_parse
with open("template.yaml") as f:
    template = yaml_parse(f.read())
sys.stdout.write(SamTemplateValidator(template, None, region="us-east-1").get_translated_template_if_valid())
endef
export SAM_TRANSLATE

scan: setup $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
	@mkdir -p .aws-sam/scan
	$(PY) -c "$$SAM_TRANSLATE" > .aws-sam/scan/template.yaml
	$(CHECKOV) -f template.yaml -f .aws-sam/scan/template.yaml --framework cloudformation --quiet --compact --skip-download

# sam build (only if template.yaml, src/handler or layers/deps changed since the last one),
# plus the runtime's boto3/botocore for replays. Both need Python 3.13, the Lambda runtime.
build: setup
	PYTHON313="$(PYTHON313)" $(PY) -m tools.replay --build-only

# One event through what sam build made, as `sam local invoke` runs it, without Docker
# (tools/replay.py). AT=now (the default) sets the event's scheduled_time to now, so each
# replay is a new run; AT= keeps the file's. PARAMS are template parameters (DryRun=false).
EVENT ?= events/schedule.json
ENV_VARS ?= events/env.json
AT ?= now
PARAMS ?=
replay: setup
	@PYTHON313="$(PYTHON313)" $(PY) -m tools.replay --event $(EVENT) --env-vars $(ENV_VARS) $(if $(AT),--at $(AT)) $(if $(PARAMS),--parameter-overrides $(PARAMS))

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) .aws-sam

print-python:
	@echo $(or $(PYTHON313),$(FALLBACK_PYTHON))
