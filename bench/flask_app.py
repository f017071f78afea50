"""The baseline: the same API served the common way, Flask inside Lambda via serverless-wsgi.

Written as such apps usually are (a boto3 client at import, Flask routing, jsonify, Werkzeug's
ETag helpers), with the same in-memory caching as ours so the comparison is about the stack, not
the cache: the pointer and each parsed batch (with an id index) are kept for a TTL. It ships as
`flask_app.py` at the root of its own zip; the Lambda handler is `flask_app.handler`.
"""

import gzip
import json
import os
import time

import boto3
import serverless_wsgi
from botocore.exceptions import ClientError
from flask import Flask, jsonify, request

BUCKET = os.environ.get("PREDICTIONS_BUCKET", "")
PREFIX = os.environ.get("PREDICTIONS_PREFIX", "predictions/")
POINTER_TTL = float(os.environ.get("POINTER_TTL_SECONDS", "30"))
BATCH_TTL = float(os.environ.get("BATCH_TTL_SECONDS", "300"))
MAX_LIMIT = 500

app = Flask(__name__)
s3 = boto3.client("s3")
_cache: dict = {}


def _get_json(key):
    obj = s3.get_object(Bucket=BUCKET, Key=key)
    body = obj["Body"].read()
    if obj.get("ContentEncoding") == "gzip":
        body = gzip.decompress(body)
    return json.loads(body)


def _cached(key, ttl, load):
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and now < hit[0]:
        return hit[1]
    value = load()
    _cache[key] = (now + ttl, value)
    return value


def latest_date():
    return _cached("latest", POINTER_TTL, lambda: _get_json(f"{PREFIX}latest.json")["date"])


def load_batch(date):
    def load():
        doc = _get_json(f"{PREFIX}{date}/predictions.json")
        doc["index"] = {p["id"]: p for p in doc["predictions"]}
        return doc

    return _cached(date, BATCH_TTL, load)


def _error(status, code, message):
    response = jsonify(error={"code": code, "message": message})
    response.status_code = status
    return response


def _batch_or_error(date):
    try:
        return load_batch(latest_date() if date == "latest" else date), None
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None, _error(404, "batch_not_found", f"no batch for {date}")
        return None, _error(503, "storage_unavailable", "predictions cannot be read right now")


def _cacheable(response, max_age):
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.add_etag()
    return response.make_conditional(request)


@app.get("/health")
def health():
    return jsonify(status="ok", version="1.0.0")


@app.get("/predictions")
def list_dates():
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX, Delimiter="/")
    dates = sorted((p["Prefix"][len(PREFIX):-1] for page in pages for p in page.get("CommonPrefixes", [])),
                   reverse=True)
    return _cacheable(jsonify(latest=latest_date(), dates=dates), 60)


@app.get("/predictions/<date>")
def get_batch(date):
    limit = request.args.get("limit", 50, type=int)
    offset = request.args.get("cursor", 0, type=int)
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        return _error(400, "invalid_parameter", "bad limit or cursor")
    batch, error = _batch_or_error(date)
    if error:
        return error
    rows = batch["predictions"]
    end = offset + limit
    return _cacheable(jsonify(date=batch["date"], model=batch.get("model"), generated_at=batch.get("generated_at"),
                              count=len(rows), total=len(rows), items=rows[offset:end],
                              next_cursor=str(end) if end < len(rows) else None), 60)


@app.get("/predictions/<date>/<pid>")
def get_prediction(date, pid):
    batch, error = _batch_or_error(date)
    if error:
        return error
    prediction = batch["index"].get(pid)
    if prediction is None:
        return _error(404, "prediction_not_found", f"no prediction {pid!r}")
    return _cacheable(jsonify(date=batch["date"], model=batch.get("model"), prediction=prediction), 60)


def handler(event, context):
    return serverless_wsgi.handle_request(app, event, context)
