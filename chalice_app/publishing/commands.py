"""What every publishing command shares: where it writes (a stage's bucket and prefix, or --bucket),
its S3 client, who runs it, and how a failure becomes one line on stderr and an exit code.

Exit codes of every command: 0 done, 2 bad input (nothing written), 1 AWS error; the publish gate's
refusal has its own (EXIT_GATE, chalice_app/publishing/gate.py).
"""

from __future__ import annotations

import getpass
import sys
from typing import Any

from chalice_app.contract import DEFAULT_PREFIX, normalize_prefix

EXIT_OK, EXIT_AWS, EXIT_INPUT = 0, 1, 2


class PublishError(Exception):
    """A failure with its exit code and one line for stderr."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def resolve_target(stage: str | None, bucket: str | None, prefix: str | None) -> tuple[str, str]:
    """Bucket and prefix from --bucket/--prefix, else from the stage's config."""
    if bucket:
        return bucket, normalize_prefix(prefix if prefix is not None else DEFAULT_PREFIX)
    from chalice_app.config.stage_file import stage_environment

    env = stage_environment(stage or "local")
    if not env.get("PREDICTIONS_BUCKET"):
        raise PublishError(f"stage {stage!r} sets no PREDICTIONS_BUCKET in .chalice/config.json", EXIT_INPUT)
    chosen = prefix if prefix is not None else env.get("PREDICTIONS_PREFIX", DEFAULT_PREFIX)
    return env["PREDICTIONS_BUCKET"], normalize_prefix(chosen)


def make_client(service: str = "s3") -> Any:
    import boto3

    return boto3.client(service)


def who() -> str | None:
    """The operator's login name, when the system knows it."""
    try:
        return getpass.getuser() or None
    except Exception:  # noqa: BLE001 - no user name in this environment: record none
        return None


def report_failure(exc: Exception) -> int:
    """One line on stderr and the exit code for a failure of a publishing command; re-raises a bug."""
    if isinstance(exc, PublishError):
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if type(exc).__module__.startswith(("botocore", "boto3")):
        print(f"error: AWS: {exc}", file=sys.stderr)
        return EXIT_AWS
    if isinstance(exc, ValueError):  # StageError and friends: bad input
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    raise exc
