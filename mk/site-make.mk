# The static site. Included by the Makefile (`-include mk/*.mk`); uses its VENV, PY,
# STAGE and the `venv` and `chromium` targets. See docs/website.md.

SITE_SAMPLE_BUCKET := build/sample-bucket
SITE_SAMPLE := build/site-sample
SITE_PORT ?= 8080
SITE_API ?= http://127.0.0.1:8000
NODE_STAMP := node_modules/.installed

.PHONY: site site-stage site-serve site-bench lighthouse

site: venv ## build a sample site (7 days x 500 predictions, no AWS, no servers) into build/site-sample
	$(PY) -m chalice_app.publishing.sample --out $(SITE_SAMPLE_BUCKET) --days 7 --count 500 --end-date 2026-11-20
	$(PY) build_site.py --source $(SITE_SAMPLE_BUCKET) --out $(SITE_SAMPLE) --days 7

site-stage: venv ## build the site of STAGE from its predictions bucket into build/site-STAGE
	$(PY) build_site.py --stage $(STAGE)

site-serve: site ## serve build/site-sample as deploy/stack.json's distribution on 127.0.0.1:SITE_PORT, /api/* via an API Gateway stand-in to SITE_API (make run serves the full stack)
	$(PY) -m tools.edge --root $(SITE_SAMPLE) --api $(SITE_API) --port $(SITE_PORT)

site-bench: venv ## time a build of 30 days x 1,000 predictions
	$(PY) -m chalice_app.publishing.sample --out build/bench-bucket --days 30 --count 1000 --end-date 2026-11-20
	time $(PY) build_site.py --source build/bench-bucket --out build/site-bench --days 30

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

lighthouse: venv chromium $(NODE_STAMP) ## Lighthouse 12 (mobile and desktop) on a 500-prediction site via the local stack; fails below 95 or over 50 KB; writes bench/results/lighthouse.md
	$(PY) -m tools.lighthouse --preset both --results bench/results/lighthouse.md

.PHONY: site-follow-bench
site-follow-bench: venv ## one 100,000-prediction publish on the local stack: files uploaded, paths invalidated, seconds to the new site
	$(PY) -m tools.site_follow_bench --count 100000 --history 100000 --days 7
