# Deployment targets (see docs/deploy.md).

STAGES := local dev prod

.PHONY: deploy deploy-check

deploy: venv ## deploy STAGE (default dev): chalice deploy, prewarm, build and publish the site
	$(PY) -m deploy.stage --stage $(STAGE)

deploy-check: venv ## what can be checked here: chalice package + cfn-lint for every stage, no wildcard policy
	@find chalice_app -name __pycache__ -prune -exec rm -rf {} +
	@set -e; for stage in $(STAGES); do \
	  rm -rf build/package-$$stage; \
	  AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(VENV)/bin/chalice package --stage $$stage build/package-$$stage >/dev/null; \
	  $(VENV)/bin/cfn-lint build/package-$$stage/sam.json; \
	  echo "$$stage: chalice package ok ($$(stat -c %s build/package-$$stage/deployment.zip) bytes), cfn-lint clean"; \
	done
	$(PY) -m pytest -q -p no:randomly tests/test_config.py tests/test_package.py
