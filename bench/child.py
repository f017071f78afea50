"""One measurement in a fresh interpreter: what a Lambda container does when it starts.

Run as `python -P bench/child.py MODE TARGET [key=value ...]` with PYTHONPATH set to the unpacked
deployment zip, so that the code imported is exactly the code that ships (Lambda puts the zip
first on sys.path and provides boto3 itself). Stdlib only and nothing imported before the clock
starts except `os`, `sys` and `time`, so the figures hold only the target's own costs.

Modes: cold (import + first request), warm (per-request times once cached), load (S3 read,
parse and index of a batch), probe (one piece of the cold path). The result is one JSON line on
stdout prefixed by RESULT_MARK; the apps may log their own lines around it.
"""

import os
import sys
import time

RESULT_MARK = "BENCH_RESULT "


class FakeContext:
    """Just enough of a Lambda context object for Chalice and serverless-wsgi."""

    function_name = "predictions-dev"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:predictions-dev"
    memory_limit_in_mb = "512"
    log_group_name = "/aws/lambda/predictions-dev"
    log_stream_name = "2026/11/23/[$LATEST]bench"

    def __init__(self, n):
        self.aws_request_id = f"bench-{n:08d}"

    def get_remaining_time_in_millis(self):
        return 10_000


def api_event(resource, path, params, query=None):
    """An API Gateway REST (v1) proxy event, as both Chalice and serverless-wsgi expect it."""
    query = dict(query or {})
    headers = {"Host": "api.example.com", "Accept": "application/json", "User-Agent": "bench"}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None,
        "pathParameters": params or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource, "httpMethod": "GET", "path": f"/api{path}", "stage": "api",
            "requestId": "bench", "accountId": "123456789012", "apiId": "bench",
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "bench"},
        },
        "body": None,
        "isBase64Encoded": False,
    }


def page_event():
    return api_event("/predictions/{date}", "/predictions/latest", {"date": "latest"}, {"limit": "50"})


def id_event(pid):
    return api_event("/predictions/{date}/{pid}", f"/predictions/latest/{pid}", {"date": "latest", "pid": pid})


def health_event():
    return api_event("/health", "/health", {})


def load_handler(target):
    if target == "ours":
        from app import app  # Chalice's entry point, as the Lambda runtime imports it

        return app
    from flask_app import handler

    return handler


def call(handler, event, n):
    response = handler(event, FakeContext(n))
    if response.get("statusCode") != 200:
        raise SystemExit(f"{event['path']} answered {response.get('statusCode')}: {str(response)[:300]}")
    return response


def mode_cold(target, opts):
    c0 = time.process_time()
    t0 = time.perf_counter()
    handler = load_handler(target)
    if opts.get("s3client") == "botocore":
        # What a container without credentials in its environment uses: botocore's client.
        os.environ["S3_CLIENT"] = "botocore"
    if opts.get("ssm") == "lean":
        lean_ssm_client()
    if opts.get("eager") == "1":
        # What container.py would do if it created the store (and its S3 client) at import.
        from chalice_app.api import container

        container.store()
    t1 = time.perf_counter()
    event = health_event() if opts.get("route") == "health" else page_event()
    response = call(handler, event, 0)
    t2 = time.perf_counter()
    cpu = time.process_time() - c0
    return {"import_ms": (t1 - t0) * 1e3, "first_ms": (t2 - t1) * 1e3, "cold_ms": (t2 - t0) * 1e3,
            "cpu_ms": cpu * 1e3, "bytes": len(response.get("body") or ""),
            "botocore_imported": "botocore" in sys.modules}


def lean_ssm_client():
    """The recommended change to chalice_app/config/parameter_store.py, applied in place: its SSM client made
    by chalice_app.aws_clients.make_client, which shares the S3 client's lean loader."""
    from chalice_app import aws_clients as s3
    from chalice_app.config import parameter_store as ssm_settings

    def make_ssm_client(connect_timeout, read_timeout):
        from botocore.config import Config

        return s3.make_client("ssm", Config(connect_timeout=connect_timeout, read_timeout=read_timeout,
                                            retries={"total_max_attempts": 2, "mode": "standard"}))

    ssm_settings.make_ssm_client = make_ssm_client


def _median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _timed(handler, make_event, n, first):
    times = []
    for i in range(n):
        event = make_event()
        t = time.perf_counter_ns()
        call(handler, event, first + i)
        times.append(time.perf_counter_ns() - t)
    return _median(times) / 1e3


def mode_warm(target, opts):
    handler = load_handler(target)
    n = int(opts.get("n", "200"))
    pid = opts["pid"]
    call(handler, page_event(), 0)  # the cold request: loads and caches the batch
    size = int(opts.get("size", "0"))
    # Random ids: each request most likely a row not asked for before (sample ids are sku-00001.. in order).
    rng = __import__("random").Random(1123)
    random_ids = iter([f"sku-{rng.randrange(size) + 1:05d}" for _ in range(n)] if size else [pid] * n)
    # Alternate short runs of each kind so that drift (CPU frequency, the moto threads) hits both.
    pages, ids, randoms = [], [], []
    for block in range(4):
        pages.append(_timed(handler, page_event, n // 4, 1 + block * n))
        ids.append(_timed(handler, lambda: id_event(pid), n // 4, 1 + block * n + n // 4))
        randoms.append(_timed(handler, lambda: id_event(next(random_ids)), n // 4, 1 + block * n + n // 2))
    return {"page_us": _median(pages), "id_us": _median(ids), "random_id_us": _median(randoms)}


def mode_load(target, opts):
    """S3 read + parse + index of one batch, with the client and connection already up."""
    date = opts["date"]
    if target == "baseline":
        import flask_app

        flask_app.latest_date()  # creates the connection, as the pointer read does in a request
        t = time.perf_counter()
        flask_app.load_batch(date)
        return {"load_ms": (time.perf_counter() - t) * 1e3}
    import json

    from chalice_app.api import container
    from chalice_app.contract import batch_key
    from chalice_app.store.batch import Batch

    store = container.store()
    store.latest_date()
    t = time.perf_counter()
    store.batch(date)
    total = time.perf_counter() - t
    out = {"load_ms": total * 1e3}
    if opts.get("breakdown") == "1":
        # The same steps one by one (a second copy in memory: RSS of this mode is not reported).
        source = store.source
        t = time.perf_counter()
        fetched = source.get(batch_key(store.prefix, date))
        t_fetch = time.perf_counter()
        doc = json.loads(fetched.body)
        t_parse = time.perf_counter()
        Batch(doc, fetched.etag)
        t_index = time.perf_counter()
        out.update(fetch_ms=(t_fetch - t) * 1e3, parse_ms=(t_parse - t_fetch) * 1e3,
                   index_ms=(t_index - t_parse) * 1e3, body_bytes=len(fetched.body))
    return out


IMPORT_PROBES = {
    "import-botocore": ["botocore.session"],
    "import-boto3": ["boto3"],
    "import-app": ["app"],
    "import-flask": ["flask", "serverless_wsgi"],
}


def mode_probe(target, opts):
    """One piece of the cold path on its own; `target` names the piece."""
    imports = IMPORT_PROBES.get(target)
    t0 = time.perf_counter()
    if imports:
        for module in imports:
            __import__(module)
    elif target == "client-boto3":
        import boto3

        t1 = time.perf_counter()
        boto3.client("s3")
        return {"import_ms": (t1 - t0) * 1e3, "client_ms": (time.perf_counter() - t1) * 1e3}
    elif target == "client-botocore":
        import botocore.session

        t1 = time.perf_counter()
        botocore.session.get_session().create_client("s3")  # the stock session and loader
        return {"import_ms": (t1 - t0) * 1e3, "client_ms": (time.perf_counter() - t1) * 1e3}
    elif target == "client-ours":
        import botocore.session  # first, so that client_ms compares like for like

        from chalice_app.aws_clients import make_s3_client
        from chalice_app.config.settings import Settings

        t1 = time.perf_counter()
        make_s3_client(Settings())
        return {"import_ms": (t1 - t0) * 1e3, "client_ms": (time.perf_counter() - t1) * 1e3}
    elif target in ("s3read-botocore", "s3read-stdlib"):
        return s3_read(target, t0, opts)
    else:
        raise SystemExit(f"unknown probe {target}")
    return {"import_ms": (time.perf_counter() - t0) * 1e3}


def s3_read(target, t0, opts):
    """From nothing imported to the latest batch parsed: pointer GET, batch GET, gunzip, json."""
    bucket, prefix = os.environ["PREDICTIONS_BUCKET"], os.environ.get("PREDICTIONS_PREFIX", "predictions/")
    if target == "s3read-stdlib":
        import ssl  # noqa: F401 - real S3 is HTTPS: count what an HTTPS connection would import

        sys.path.append(os.path.dirname(os.path.abspath(__file__)))
        import json
        import zlib

        from stdlib_s3 import StdlibS3

        s3 = StdlibS3()

        def get(key):
            body, encoding = s3.get(bucket, key)
            return zlib.decompress(body, 31) if encoding == "gzip" else body
    else:
        import json

        from chalice_app.aws_clients import make_s3_client
        from chalice_app.config.settings import load_settings
        from chalice_app.store.sources import S3Source

        source = S3Source(make_s3_client(load_settings()), bucket)

        def get(key):
            return source.get(key).body
    t1 = time.perf_counter()
    date = json.loads(get(f"{prefix}latest.json"))["date"]
    doc = json.loads(get(f"{prefix}{date}/predictions.json"))
    assert doc["predictions"]
    return {"import_ms": (t1 - t0) * 1e3, "read_ms": (time.perf_counter() - t0) * 1e3}


def peak_rss_kb(resource):
    """This process's own peak RSS.

    ru_maxrss would be wrong here: Linux carries it across the vfork+exec that started this child,
    so every child would report at least the parent's peak (the bench runner holds moto and 100k
    rows). VmHWM is the high-water mark of this address space alone.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


MODES = {"cold": mode_cold, "warm": mode_warm, "load": mode_load, "probe": mode_probe}


def main():
    mode, target = sys.argv[1], sys.argv[2]
    opts = dict(arg.split("=", 1) for arg in sys.argv[3:])
    result = MODES[mode](target, opts)
    import json
    import resource

    result["maxrss_kb"] = peak_rss_kb(resource)
    result["ru_maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kept to show the skew
    result["pid"] = os.getpid()
    sys.stdout.write(RESULT_MARK + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
