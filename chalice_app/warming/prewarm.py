"""Prewarm after a deploy: `python -m chalice_app.warming.prewarm --stage S` runs the stage's warmer once.

It invokes the deployed warmer function ({app_name}-{stage}-warmer, as `chalice deploy` names
it), which warms the API exactly as the schedule does, and prints the warmer's summary.
Exit codes: 0 every warm-up succeeded; 1 AWS refused or failed, or a warm-up failed; 2 bad usage
or configuration (unknown stage, warmer off for the stage).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from chalice_app.config.stage_file import CONFIG_PATH, StageError, load_config, stage_environment
from chalice_app.warming.scheduled import WARMER_NAME, WarmerConfigError, schedule_minutes

INVOKE_READ_TIMEOUT = 60  # the warmer's own lambda_timeout is 30 s


class WarmError(Exception):
    """A failure worth one line on stderr; `code` is the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def warmer_function(stage: str, path: str = CONFIG_PATH) -> str:
    """The deployed name of `stage`'s warmer; WarmError(2) when the stage does not run one."""
    try:
        env = stage_environment(stage, path)
        rate = schedule_minutes(env)
    except (StageError, WarmerConfigError) as exc:
        raise WarmError(str(exc), 2) from None
    if rate is None:
        raise WarmError(f"the warmer is off for stage {stage!r} (WARMER_ENABLED in {path}); "
                        "there is no warmer function to invoke", 2)
    return f"{load_config(path)['app_name']}-{stage}-{WARMER_NAME}"


def scheduled_event(region: str | None) -> dict:
    """What EventBridge sends a scheduled function: Chalice's CloudWatchEvent needs every key."""
    return {"version": "0", "id": "prewarm", "detail-type": "Scheduled Event", "source": "predictions.warm",
            "account": "", "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region or "", "resources": [], "detail": {"trigger": "chalice_app.warming.prewarm"}}


def make_client(region: str | None) -> Any:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import NoRegionError

    # No retries: a retried invoke would warm twice and print only one summary.
    config = Config(read_timeout=INVOKE_READ_TIMEOUT, retries={"total_max_attempts": 1, "mode": "standard"})
    try:
        return boto3.client("lambda", region_name=region, config=config)
    except NoRegionError:
        raise WarmError("no AWS region set (pass --region or set AWS_DEFAULT_REGION)", 2) from None


def invoke_warmer(client: Any, function: str, region: str | None) -> dict:
    """Run the warmer once and return its summary; WarmError with one line on any failure."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        response = client.invoke(FunctionName=function, InvocationType="RequestResponse",
                                 Payload=json.dumps(scheduled_event(region)).encode("utf-8"))
        payload = response["Payload"].read().decode("utf-8", "replace")
    except NoCredentialsError:
        raise WarmError("no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID)") from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise WarmError(f"function {function} not found: deploy the stage first (chalice deploy)") from None
        message = exc.response.get("Error", {}).get("Message", str(exc))
        raise WarmError(f"invoking {function} failed: {code}: {message}") from None
    except BotoCoreError as exc:
        raise WarmError(f"invoking {function} failed: {exc}") from None
    if response.get("FunctionError"):
        raise WarmError(f"the warmer {function} failed ({response['FunctionError']}): {_error_message(payload)}")
    try:
        summary = json.loads(payload)
    except ValueError:
        summary = None
    if not isinstance(summary, dict) or "invoked" not in summary:
        raise WarmError(f"the warmer {function} answered something else than a summary: {payload[:200]}")
    return summary


def _error_message(payload: str) -> str:
    try:
        doc = json.loads(payload)
        return f"{doc.get('errorType', 'Error')}: {doc.get('errorMessage', '')}"[:300]
    except (ValueError, AttributeError):
        return payload[:300]


def describe(summary: dict) -> str:
    line = (f"warmed {summary.get('target', '?')}: {summary['invoked']} invoked, {summary.get('ok', 0)} ok, "
            f"{summary.get('cold', 0)} cold, {summary.get('failures', 0)} failed, "
            f"{summary.get('containers', 0)} containers, {summary.get('duration_ms', 0):.0f} ms")
    errors = summary.get("errors") or []
    return line + "".join(f"\n  error: {e}" for e in errors)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m chalice_app.warming.prewarm",
        description="Run a deployed stage's warmer once (right after `chalice deploy`) and print its summary: "
                    "how many API containers it invoked, how many were cold, how many failed.",
        epilog="Exit codes: 0 all warm-ups succeeded, 1 AWS error or a failed warm-up, 2 usage or configuration.")
    parser.add_argument("--stage", required=True, help="a stage of .chalice/config.json (e.g. dev, prod)")
    parser.add_argument("--region", help="AWS region of the deployment (default: AWS_DEFAULT_REGION/profile)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, client: Any = None) -> int:
    args = parse_args(argv)
    try:
        function = warmer_function(args.stage)
        summary = invoke_warmer(client if client is not None else make_client(args.region), function, args.region)
    except WarmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    print(json.dumps(summary, separators=(",", ":")) if args.json else describe(summary))
    return 1 if summary.get("failures") else 0


if __name__ == "__main__":
    sys.exit(main())
