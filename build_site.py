"""Render the static site from the prediction batches: every page with its data already in the HTML.

    python build_site.py [--stage S] [--out DIR] [--source s3|DIR] [--days N]
    python build_site.py --stage S --publish [--dry-run]      # build, then deploy (deploy/site_command.py)
    python build_site.py --stage S --delete-site [--dry-run]

A thin command line: rendering is chalice_app.website (the same code a Lambda can run), putting
the files online is deploy/. Batches are read through the same store code as the API.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable

from chalice_app.website.build import build, open_store
from chalice_app.website.render import BuildError
from chalice_app.website.view import DEFAULT_DAYS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python build_site.py",
                                description="Render the static site from the stage's prediction batches.")
    p.add_argument("--stage", default="local", help="stage in .chalice/config.json (default local)")
    p.add_argument("--out", help="output folder, replaced as a whole (default build/site-<stage>)")
    p.add_argument("--source", default="s3",
                   help="'s3' (the stage's bucket, default) or a folder laid out like the bucket")
    p.add_argument("--days", type=int, default=DEFAULT_DAYS,
                   help=f"pages for this many recent dates (default {DEFAULT_DAYS})")
    deploy = p.add_mutually_exclusive_group()
    deploy.add_argument("--publish", action="store_true",
                        help="after building, put the site in the stage's private S3 bucket behind CloudFront "
                             "(created on first use; needs `chalice deploy --stage S` first for /api/*); "
                             "uploads only changed files and invalidates only changed pages")
    deploy.add_argument("--delete-site", action="store_true",
                        help="tear down the stage's site (distribution, bucket, access control); builds nothing")
    p.add_argument("--dry-run", action="store_true",
                   help="with --publish or --delete-site: print the plan, change nothing in AWS")
    return p


def main(argv: Iterable[str] | None = None) -> int:
    args = parser().parse_args(None if argv is None else list(argv))
    out = args.out or os.path.join("build", f"site-{args.stage}")

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.dry_run and not (args.publish or args.delete_site):
        parser().error("--dry-run applies to --publish or --delete-site")
    if args.delete_site or args.publish:
        from deploy import site_command

        if args.delete_site:
            return site_command.delete_site(args.stage, dry_run=args.dry_run, progress=progress)
        return site_command.publish(args.stage, out, source=args.source, days=args.days, dry_run=args.dry_run,
                                    progress=progress)
    try:
        build(open_store(args.stage, args.source), out, args.days, progress=progress)
    except BuildError as exc:
        print(f"build_site: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
