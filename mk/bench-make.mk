# Benchmarks (docs/performance.md): our Chalice handler against Flask inside Lambda
# (serverless-wsgi), same moto S3 server on 127.0.0.1, interleaved runs, medians.
# Included by the Makefile, which defines VENV, PY and the venv target.

.PHONY: bench bench-quick

bench: venv ## benchmarks vs Flask-in-Lambda (~2 min on 2 cores); writes bench/results/latest.{md,json}
	$(PY) -m bench

bench-quick: venv ## every main benchmark step once, in seconds (the figures mean nothing)
	$(PY) -m bench --quick --out -
