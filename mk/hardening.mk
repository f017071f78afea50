# Hardening: the bounded loopback load and the OpenAPI document.
# Included by the Makefile (-include mk/*.mk); uses its VENV, PY and venv target.
# Everything binds 127.0.0.1, sends a fixed number of requests and stops what it started.

LOAD_REQUESTS ?= 5000
LOAD_CONCURRENCY ?= 32
# LOAD_URL=http://127.0.0.1:8080/api loads a stack that is already running (make run) instead.
LOAD_URL ?=
LOAD_ARGS = --requests $(LOAD_REQUESTS) --concurrency $(LOAD_CONCURRENCY) $(if $(LOAD_URL),--url $(LOAD_URL))

.PHONY: load load-direct openapi

load: venv ## bounded loopback load through the local edge (own moto + chalice local + site); fails on any error
	$(PY) -m tools.load $(LOAD_ARGS)

load-direct: venv ## the same load straight at chalice local (no site build, no edge)
	$(PY) -m tools.load --direct $(LOAD_ARGS)

openapi: venv ## regenerate openapi.json from the Chalice routes (tests fail while it is stale)
	$(PY) -m tools.openapi
