"""Time one full rebuild of the site function: every date rendered, every file uploaded.

    python -m bench.site_full_render [--count 100000] [--days 7] [--threads 8] [--put-ms 20]

What the site function does when nothing can be kept (a first run, a template change, or the first
rebuild after `build_site.py --publish`, whose manifest carries no fingerprints): render `--days`
dates of `--count` predictions and upload them to an empty bucket. The bucket is moto's, in
process, so each PUT is made to take `--put-ms` more (S3 answers a PUT of ~50 KB in tens of ms);
with `--threads` 1 it is the serial upload. Prints seconds for the render and the uploads, PUTs,
megabytes and the process's peak RSS. The batches are sample data (chalice_app/publishing/sample.py)
in a folder, read through the same store as the site.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from typing import Any


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.site_full_render", description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=100_000, help="predictions per date (default 100000)")
    p.add_argument("--days", type=int, default=7, help="dates on the site (default 7)")
    p.add_argument("--threads", type=int, default=8, help="uploads in flight (default sync.UPLOAD_THREADS)")
    p.add_argument("--put-ms", type=float, default=20.0, help="added latency of each PUT (default 20)")
    args = p.parse_args(argv)

    import os

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    import boto3
    from moto import mock_aws

    from chalice_app.publishing.sample import dates_ending, make_batch, write_folder
    from chalice_app.store.cache import PredictionStore
    from chalice_app.store.sources import DirSource
    from chalice_app.website import rebuild, sync

    folder = tempfile.mkdtemp(prefix="site-bench-")
    started = time.monotonic()
    # One date more than the window: the oldest page still has a batch to compare with.
    for date in dates_ending("2026-11-20", args.days + 1):
        write_folder(folder, "predictions/", [make_batch(date, args.count)])
    print(f"sample batches written in {time.monotonic() - started:.1f} s", file=sys.stderr)

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="site-bench")
        puts = {"n": 0, "bytes": 0, "seconds": 0.0}
        real_put = s3.put_object
        first_put: list[float] = []

        def put_object(**kw: Any) -> Any:
            if not first_put:
                first_put.append(time.monotonic())
            time.sleep(args.put_ms / 1000)
            puts["n"] += 1
            puts["bytes"] += len(kw["Body"])
            return real_put(**kw)

        s3.put_object = put_object
        sync.UPLOAD_THREADS = args.threads
        store = PredictionStore(DirSource(folder), "predictions/", max_batches=2)
        started = time.monotonic()
        result = rebuild.rebuild(store, rebuild.S3Site(s3, "site-bench"), pointer="bench", days=args.days)
        total = time.monotonic() - started
    render_s = (first_put[0] - started) if first_put else total
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.days} dates x {args.count:,} predictions, {args.threads} upload thread(s), "
          f"{args.put_ms:g} ms per PUT")
    print(f"files {result.files:,}  PUTs {puts['n']:,}  uploaded {puts['bytes'] / 1e6:.1f} MB  kept {result.kept}")
    print(f"render {render_s:.1f} s  upload {total - render_s:.1f} s  total {total:.1f} s  peak RSS {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
