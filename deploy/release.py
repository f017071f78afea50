"""One build of the app, promoted from stage to stage: `make release`, then `make deploy STAGE=S RELEASE=DIR`.

    python -m deploy.release --out build/release                 # package dev and prod once
    python -m deploy.release --out build/release --stages prod   # only some stages
    python -m deploy.release --show build/release                # what a release holds

A release is a folder: `deployment.zip` (the code and its compiled dependencies, built once for the Lambda
runtime), `sam-<stage>.json` per stage (Chalice's package of that stage with the merge template: names,
alias, traffic shift, throttle, logs), and `release.json` (the commit, the code's hash, the stages, and a
hash of `.chalice/` as it was). Every stage's package must carry the same code: the zips are compared by
content (deploy/release_files.py `content_hash`), so what was tested on dev is byte for byte what reaches prod.

`python -m deploy.app_stack --stage S --release DIR` (what `make deploy STAGE=S RELEASE=DIR` runs) deploys
a release instead of packaging (deploy/release_files.py checks it): it refuses a release without that stage,
a zip whose contents are not the recorded hash, or a release built from other stage settings than
`.chalice/` holds now (a stage stack step that rewrote the site function's settings, a hand edit): commit
the settings and build again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from typing import Any

from chalice_app.config.stage_file import StageError, load_config
from deploy import app_stack
from deploy.release_files import MANIFEST, ZIP, ReleaseError, settings_hash, template_name
from deploy.stack import StackError

PROJECT_DIR = app_stack.PROJECT_DIR
DEFAULT_STAGES = ("dev", "prod")


def _commit(project_dir: str) -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_dir, capture_output=True, text=True,
                              timeout=10, check=False)
    except OSError:
        return None
    return done.stdout.strip() or None


def build(out: str, stages: list[str], *, project_dir: str = PROJECT_DIR, run: app_stack.Packager = app_stack._package,
          say: Any = print) -> dict[str, Any]:
    """Package each stage, check they carry the same code, write the release into `out`; its manifest."""
    config = load_config(os.path.join(project_dir, ".chalice", "config.json"))
    unknown = [s for s in stages if s not in config.get("stages", {})]
    if unknown or not stages:
        raise ReleaseError(f"unknown stages {unknown}; stages: {', '.join(sorted(config.get('stages', {})))}")
    settings = settings_hash(project_dir)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    digests: dict[str, str] = {}
    for number, stage in enumerate(stages, 1):
        say(f"[{number}/{len(stages)}] package stage {stage}")
        template, zip_path = app_stack.package(stage, config["app_name"], config, project_dir, run)
        digests[stage] = app_stack.content_hash(zip_path)
        with open(os.path.join(out, template_name(stage)), "w", encoding="utf-8") as fh:
            json.dump(template, fh, indent=1, sort_keys=True)
        if number == 1:
            shutil.copyfile(zip_path, os.path.join(out, ZIP))
    if len(set(digests.values())) != 1:
        raise ReleaseError(f"the stages' packages carry different code ({digests}): a stage setting reaches the "
                           "zip; a release must be one build")
    manifest = {"commit": _commit(project_dir), "content_sha256": next(iter(digests.values())),
                "stages": stages, "settings_sha256": settings,
                "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "zip_bytes": os.path.getsize(os.path.join(out, ZIP))}
    if settings_hash(project_dir) != settings:
        raise ReleaseError(".chalice/ changed while the release was built: build it again")
    with open(os.path.join(out, MANIFEST), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2)
    say(f"release {out}: code {manifest['content_sha256'][:12]} ({manifest['zip_bytes']} bytes) for "
        f"{', '.join(stages)}, commit {manifest['commit'] or '(not a git checkout)'}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.release", description=__doc__.split("\n\n")[0],
                                epilog="Exit status: 0 built (or shown), 1 failed (the reason is printed), 2 usage.")
    p.add_argument("--out", help="the release folder to write (e.g. build/release)")
    p.add_argument("--stages", nargs="+", default=list(DEFAULT_STAGES), help="stages to package (default: dev prod)")
    p.add_argument("--show", metavar="DIR", help="print the manifest of the release in DIR")
    args = p.parse_args(argv)
    if bool(args.out) == bool(args.show):
        p.error("give --out DIR to build a release or --show DIR to look at one")
    try:
        if args.show:
            with open(os.path.join(args.show, MANIFEST), encoding="utf-8") as fh:
                print(json.dumps(json.load(fh), indent=2))
            return 0
        from deploy.stage import remove_bytecode

        remove_bytecode()
        build(args.out, args.stages)
    except (StackError, StageError, OSError, ValueError) as exc:
        print(f"deploy.release: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
