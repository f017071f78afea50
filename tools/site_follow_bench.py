"""`make site-follow-bench`: how much one publish costs the site, measured on the local stack.

Seeds `--days` dates of `--history` predictions, builds the site, then publishes one batch of
`--count` predictions for the next day and waits until the follower (the site function's handler,
as `make run` runs it) has re-rendered the site. Prints the files uploaded and deleted, the CloudFront
paths the handler would invalidate, and the seconds from the pointer's move to the new site on disk.

    python -m tools.site_follow_bench [--count 100000] [--history 100000] [--days 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time

from tools.devstack import local_stack

END_DATE = "2026-11-20"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.site_follow_bench", description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=100_000, help="predictions in the published batch")
    p.add_argument("--history", type=int, default=100_000, help="predictions in each seeded batch")
    p.add_argument("--days", type=int, default=7, help="seeded dates, and dates on the site")
    args = p.parse_args(argv)
    from chalice_app.publishing.sample import make_batch

    new_date = (dt.date.fromisoformat(END_DATE) + dt.timedelta(days=1)).isoformat()
    with tempfile.TemporaryDirectory(prefix="follow-bench-") as work:
        started = time.monotonic()
        with local_stack(days=args.days, count=args.history, end_date=END_DATE, api=False, site=True,
                         follow=True, site_dir=os.path.join(work, "site"), site_days=args.days,
                         log_path=os.path.join(work, "stack.log")) as stack:
            seeded = time.monotonic() - started
            doc = make_batch(new_date, args.count)
            t0 = time.monotonic()
            stack.publish(doc)
            moved = time.monotonic()  # the pointer names the new date from here on
            stack.wait_for_site(new_date, timeout=600)
            live = time.monotonic()
            assert stack.follower is not None
            summary = next(r for r in reversed(stack.follower.results) if not r.get("skipped"))
        report = {"published_predictions": args.count, "site_days": args.days, "history_predictions": args.history,
                  "seed_and_first_build_s": round(seeded, 1), "publish_s": round(moved - t0, 1),
                  "pointer_to_live_site_s": round(live - moved, 1), "rebuild_ms": summary["ms"],
                  "files_rendered": summary["files"], "files_uploaded": summary["uploaded"],
                  "files_deleted": summary["deleted"], "paths_invalidated": len(summary["invalidated"]),
                  "invalidation_paths": summary["invalidated"]}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
