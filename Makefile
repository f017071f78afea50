# Two commands on a fresh machine: `make run` (the whole stack locally) and `make test`.
# Every target installs what it needs itself (a venv from requirements-dev.txt, Debian's chromium).

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt requirements.txt pyproject.toml | sha1sum | cut -c1-12)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAGE ?= dev
# Bytecode goes under build/: vendor/chalice_app is a symlink, and caches beside the sources
# would otherwise ship in the Lambda zip.
export PYTHONPYCACHEPREFIX := $(CURDIR)/build/pycache

.PHONY: help venv chromium test test-fast lint run package deploy-check clean docs

help: ## list the targets
	@grep -hE '^[a-z][a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

$(STAMP): requirements-dev.txt requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	# The project itself, editable (its modules and the predictions-* commands); no download needed.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create .venv with the development requirements and the project installed editable

chromium: ## install Debian's chromium for the browser tests when it is missing
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium chromium-driver; }

lint: venv ## ruff over everything
	$(PY) -m ruff check .

test: venv chromium lint ## everything: unit, package, local stack and browser tests
	$(PY) -m pytest

test-fast: venv ## the fast tests only, in seconds: pure unit tests (no moto per test, subprocess, server or browser)
	$(PY) -m pytest -m "not slow"

run: venv ## moto S3 + sample data + chalice local (+ the site) on 127.0.0.1; Ctrl-C stops
	$(PY) -m tools.devstack

package: venv ## chalice package for STAGE (default dev) into build/package-STAGE, with the stage's runtime
	find chalice_app -name __pycache__ -prune -exec rm -rf {} +
	rm -rf build/package-$(STAGE)
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(PY) -m deploy.chalice_cli package --stage $(STAGE) build/package-$(STAGE)
	@ls -l build/package-$(STAGE)/deployment.zip

docs: venv ## copy bench/results/latest.md into docs/performance.md and lighthouse.md into docs/website.md (after make bench / make lighthouse; a test fails while stale)
	$(PY) -m bench.docs

clean: ## remove builds and caches (keeps .venv)
	rm -rf build .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

# Targets of the site, the warmer, the benchmarks, hardening and deployment, one file each.
-include $(wildcard mk/*.mk)
