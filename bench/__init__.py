"""Benchmarks: our Chalice handler against Flask inside Lambda (serverless-wsgi), same S3, same run.

`make bench` (or `python -m bench`) prints the table and writes bench/results/latest.{md,json}.
"""
