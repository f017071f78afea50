"""The site's deploy commands behind `build_site.py --publish` and `--delete-site`.

Every failure is one line on stderr and exit code 1, never a traceback: AWS errors included.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from chalice_app.website.build import build, open_store
from chalice_app.website.render import BuildError
from deploy import site_deploy

Progress = Callable[[str], None]


def _fail(message: str) -> int:
    print(f"build_site: error: {message}", file=sys.stderr)
    return 1


def _is_aws_error(exc: Exception) -> bool:
    return type(exc).__module__.startswith(("botocore", "boto3"))


def publish(stage: str, out: str, *, source: str, days: int, dry_run: bool, progress: Progress) -> int:
    """Build the stage's site into `out`, then sync it into the stage stack's bucket (deploy/stack.py made it)."""
    try:
        clients = site_deploy.Clients.create()
        site_deploy.site_outputs(clients, stage)  # fail before building, not after
        build(open_store(stage, source), out, days, progress=progress)
        report = site_deploy.publish_site(stage, out, clients=clients, dry_run=dry_run, progress=progress)
    except (BuildError, site_deploy.DeployError) as exc:
        return _fail(str(exc))
    except Exception as exc:  # AWS errors of every kind: one line, not a traceback
        if not _is_aws_error(exc):
            raise
        return _fail(f"AWS: {exc}")
    if report.url:
        print(f"site of stage {stage} published: {report.url}")
    return 0


def delete_site(stage: str, *, dry_run: bool, progress: Progress) -> int:
    """Tear down the stage's site: empty its buckets (every version), delete its stack."""
    try:
        site_deploy.delete_site(stage, clients=site_deploy.Clients.create(), dry_run=dry_run, progress=progress)
    except site_deploy.DeployError as exc:
        return _fail(str(exc))
    except Exception as exc:
        if not _is_aws_error(exc):
            raise
        return _fail(f"AWS: {exc}")
    return 0
