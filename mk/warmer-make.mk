# The warmer (docs/warming.md): run a deployed stage's warmer once, e.g. right after `chalice deploy`.
# Included by the Makefile, which defines VENV, PY, STAGE and the venv target.
STAGE ?= dev

.PHONY: warm
warm: venv ## run STAGE's deployed warmer once and print its summary (make warm STAGE=prod)
	$(PY) -m chalice_app.warming.prewarm --stage $(STAGE)
