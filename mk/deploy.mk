# Deployment targets (see docs/deploy.md).

STAGES := local dev prod
# checkov pins boto3/botocore 1.35 and packaging 23, which clash with requirements-dev.txt: it gets a venv
# of its own inside .venv, from requirements-checkov.txt.
CHECKOV_VENV := $(VENV)/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

.PHONY: deploy deploy-check checkov release

# RELEASE=DIR deploys the app from a release folder (make release) instead of packaging it on this machine.
RELEASE ?=

deploy: venv ## deploy STAGE (default dev): lock, stage stack, app stack, stage stack, prewarm, bucket events, site; RELEASE=DIR deploys that build
	$(PY) -m deploy.stage --stage $(STAGE) $(if $(RELEASE),--release $(RELEASE))

release: venv ## package the app once for dev and prod into build/release (what the pipeline promotes)
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(PY) -m deploy.release --out build/release

$(CHECKOV): requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $@

checkov: venv $(CHECKOV) ## install checkov in its own venv (.venv/checkov)

# make test runs the template and package scans too (tests/test_stack_template.py, tests/test_runtime.py).
test: checkov

deploy-check: venv checkov ## what can be checked here: cfn-lint + checkov on the stack and every stage's package
	@find chalice_app -name __pycache__ -prune -exec rm -rf {} +
	$(PY) -m deploy.stack_template --check
	$(VENV)/bin/cfn-lint deploy/stack.json
	$(CHECKOV) -f deploy/stack.json --framework cloudformation --skip-download --compact --quiet
	@set -e; for stage in $(STAGES); do \
	  rm -rf build/package-$$stage; \
	  AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(PY) -m deploy.chalice_cli package --stage $$stage build/package-$$stage >/dev/null; \
	  $(VENV)/bin/cfn-lint build/package-$$stage/sam.json; \
	  $(CHECKOV) -f build/package-$$stage/sam.json --config-file deploy/checkov-chalice.yaml --compact --quiet; \
	  echo "$$stage: package ok ($$(stat -c %s build/package-$$stage/deployment.zip) bytes), cfn-lint and checkov clean"; \
	done
	$(PY) -m pytest -q -p no:randomly tests/test_config.py tests/test_package.py tests/test_stack_template.py \
	  tests/test_runtime.py tests/test_deploy_steps.py tests/test_deploy_state.py tests/test_site_deploy.py \
	  tests/test_deployer_policy.py tests/test_api_gateway.py
