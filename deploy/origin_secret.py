"""The stage's origin secret: what CloudFront sends the API as X-Origin-Verify (docs/protection.md).

    python -m deploy.origin_secret --stage prod            # create it if missing; write the API's policy
    python -m deploy.origin_secret --stage prod --rotate   # a new value, without a refused request
    python -m deploy.origin_secret --stage prod --policy   # only write .chalice/policy-prod.json (no AWS)

The secret is a SecureString in Parameter Store, named by the stage's ORIGIN_SECRET_PARAMETER in
.chalice/config.json (`/predictions/origin-secrets/<stage>`: outside CONFIG_SSM_PATH, so the settings
reader never sees it). It holds one or more comma-separated values: CloudFront sends the first (the stage
stack's NoEcho parameter OriginSecret, filled by deploy/stack.py at every deploy), the API accepts all.
It never is in the repository, a template or a stack's parameters as shown.

A rotation holds the stage's deploy lock (deploy/deploy_lock.py), each step safe to re-run when interrupted:
1. put a new value in front ("new,old"): within ORIGIN_SECRET_TTL_SECONDS every API container accepts both;
2. wait that long (plus a margin; `--wait SECONDS` to choose, 0 to skip when you know);
3. update the stage stack (deploy/stack.py): CloudFront sends the new value once the distribution is deployed,
   which the stack update waits for;
4. keep only the new value: the old one is refused within the TTL.

The API function reads the parameter with ssm:GetParameter on its ARN (the statement this command writes into
.chalice/policy-<stage>.json, and into the pre-traffic hook's policy, which sends the header itself when it
invokes a new version directly); no kms:Decrypt is granted: the AWS-managed key aws/ssm allows every principal
of the account that may read the parameter.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from typing import Any

from chalice_app.api import origin
from chalice_app.config.stage_file import CONFIG_PATH, StageError, load_config, stage_environment
from deploy import deploy_lock
from deploy.command_errors import report

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHALICE_DIR = os.path.join(PROJECT_DIR, ".chalice")
POLICY_SID = "ReadTheOriginSecret"
WAIT_MARGIN_SECONDS = 30.0
DESCRIPTION = ("predictions: what CloudFront sends the API as X-Origin-Verify (comma-separated: the first is "
               "sent, all are accepted); python -m deploy.origin_secret")

Progress = Callable[[str], None]


class OriginSecretError(Exception):
    """One clear line for the user."""


def parameter_name(stage: str, config_path: str | None = None) -> str:
    """The stage's ORIGIN_SECRET_PARAMETER (.chalice/config.json); a StageError when it sets none."""
    name = stage_environment(stage, config_path or CONFIG_PATH).get(origin.PARAMETER_ENV, "").strip()
    if not name:
        raise StageError(f"stage {stage} sets no {origin.PARAMETER_ENV} in .chalice/config.json "
                         "(every stage must: docs/protection.md)")
    return name


def ttl_seconds(stage: str, config_path: str | None = None) -> float:
    """How long the stage's API trusts the values it read (ORIGIN_SECRET_TTL_SECONDS, default 300)."""
    return origin.ttl_seconds(stage_environment(stage, config_path or CONFIG_PATH))


def new_value() -> str:
    """32 random bytes, URL-safe base64 (43 characters): no comma, fits the template's AllowedPattern."""
    return secrets.token_urlsafe(32)


def read(ssm: Any, name: str) -> tuple[tuple[str, ...], str] | None:
    """(values, ARN) of the parameter, decrypted; None when it does not exist."""
    try:
        found = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    except ssm.exceptions.ParameterNotFound:
        return None
    return origin.parse_values(found["Value"]), found.get("ARN", "")


def _put(ssm: Any, name: str, values: tuple[str, ...], *, overwrite: bool) -> None:
    ssm.put_parameter(Name=name, Value=",".join(values), Type="SecureString", Overwrite=overwrite,
                      **({} if overwrite else {"Description": DESCRIPTION, "Tier": "Standard"}))


def ensure(ssm: Any, name: str, *, progress: Progress = print) -> tuple[str, ...]:
    """The parameter's values, creating it with one new value when it does not exist (or holds none)."""
    found = read(ssm, name)
    if found is not None and found[0]:
        return found[0]
    values = (new_value(),)
    _put(ssm, name, values, overwrite=found is not None)
    progress(f"origin secret {name}: created (SecureString)")
    return values


def rotate(ssm: Any, name: str, *, update_stack: Callable[[], None], wait_seconds: float,
           sleep: Callable[[float], None] = time.sleep, progress: Progress = print) -> str:
    """Put a new value in front, wait for the API to see it, update the stack, drop the old ones."""
    found = read(ssm, name)
    if found is None or not found[0]:
        raise OriginSecretError(f"origin secret {name} does not exist: create it first "
                                "(python -m deploy.origin_secret --stage S)")
    fresh = new_value()
    _put(ssm, name, (fresh, *found[0]), overwrite=True)
    progress(f"origin secret {name}: new value in front; the API accepts it and the old one(s)")
    if wait_seconds > 0:
        progress(f"waiting {wait_seconds:.0f} s for every API container to re-read it (ORIGIN_SECRET_TTL_SECONDS "
                 "and a margin)")
        sleep(wait_seconds)
    progress("updating the stage stack: CloudFront sends the new value once the distribution is deployed")
    update_stack()
    _put(ssm, name, (fresh,), overwrite=True)
    progress(f"origin secret {name}: old value(s) dropped; the API refuses them within its TTL")
    return fresh


# -- the API's permission --------------------------------------------------------------------------

def parameter_arn(name: str, region: str = "*", account: str = "*") -> str:
    return f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"


def policy_statement(name: str, arn: str | None = None) -> dict:
    """ssm:GetParameter on that one parameter (the API's role); nothing for KMS (see the module's doc)."""
    return {"Sid": POLICY_SID, "Effect": "Allow", "Action": ["ssm:GetParameter"],
            "Resource": [arn or parameter_arn(name)]}


# Functions of a stage that send the header themselves (chalice_app/canary.py's pre-traffic hook).
READERS = ("pre_traffic",)


def policy_files(stage: str, config_path: str | None = None) -> list[str]:
    """The policy files of the stage's functions that read the secret: the API's, and the pre-traffic hook's."""
    stage_config = load_config(config_path or CONFIG_PATH)["stages"][stage]
    functions = stage_config.get("lambda_functions", {})
    return [stage_config.get("iam_policy_file", f"policy-{stage}.json"),
            *(functions[f]["iam_policy_file"] for f in READERS if functions.get(f, {}).get("iam_policy_file"))]


def write_api_policy(stage: str, name: str, *, arn: str | None = None, chalice_dir: str | None = None,
                     config_path: str | None = None) -> str | None:
    """Put the statement into the policies of policy_files(stage), before their log statement; the paths
    changed (comma-separated), else None. The statement is replaced, never duplicated."""
    changed = [path for path in (_write_statement(os.path.join(chalice_dir or CHALICE_DIR, policy_file), name, arn)
                                 for policy_file in policy_files(stage, config_path)) if path]
    return ", ".join(changed) or None


def _write_statement(path: str, name: str, arn: str | None) -> str | None:
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    policy = json.loads(text)
    statements = [s for s in policy["Statement"] if s.get("Sid") != POLICY_SID]
    logs = next((i for i, s in enumerate(statements) if s.get("Sid") == "WriteOwnLogs"), len(statements))
    statements.insert(logs, policy_statement(name, arn))
    policy["Statement"] = statements
    if json.loads(text) == policy:
        return None
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(policy, indent=2) + "\n")
    return os.path.relpath(path, PROJECT_DIR)


# -- command line ----------------------------------------------------------------------------------

def _ssm() -> Any:
    import boto3

    session = boto3.session.Session()
    if not session.region_name:
        raise OriginSecretError("no region: set AWS_DEFAULT_REGION")
    return session.client("ssm")


def _update_stage_stack(stage: str) -> None:
    """`python -m deploy.stack --stage S`, the deploy's own step (its output shown as it runs)."""
    import subprocess

    if subprocess.run([sys.executable, "-m", "deploy.stack", "--stage", stage], cwd=PROJECT_DIR,
                      check=False).returncode != 0:
        raise OriginSecretError(f"the stage stack update failed: CloudFront still sends the previous value; "
                                f"the parameter keeps both (accepted). Fix it and run `python -m deploy.stack "
                                f"--stage {stage}`, then --rotate again (or drop the old value by hand)")


def main(argv: list[str] | None = None, ssm_client: Callable[[], Any] = _ssm,
         update_stack: Callable[[str], None] = _update_stage_stack, sleep: Callable[[float], None] = time.sleep) -> int:
    p = argparse.ArgumentParser(
        prog="python -m deploy.origin_secret",
        description="Create or rotate the stage's origin secret: the X-Origin-Verify value CloudFront sends the "
                    "API, a SecureString in Parameter Store named by ORIGIN_SECRET_PARAMETER. Without options: "
                    "create it if missing, and write the API's permission into .chalice/policy-<stage>.json.",
        epilog="--rotate: (1) a new value in front, both accepted; (2) wait the API's ORIGIN_SECRET_TTL_SECONDS "
               "plus 30 s; (3) update the stage stack, CloudFront sends the new value; (4) drop the old one. "
               "No request is refused at any step. See docs/protection.md.")
    p.add_argument("--stage", required=True)
    p.add_argument("--rotate", action="store_true", help="replace the value without downtime (steps below)")
    p.add_argument("--wait", type=float, default=None, metavar="SECONDS",
                   help="seconds to wait in step 2 (default: the stage's ORIGIN_SECRET_TTL_SECONDS + 30)")
    p.add_argument("--policy", action="store_true",
                   help="only write the API's permission into .chalice/policy-<stage>.json (no AWS call)")
    args = p.parse_args(argv)
    try:
        name = parameter_name(args.stage)
        if args.policy:
            changed = write_api_policy(args.stage, name)
            print(f"wrote {changed}" if changed else f"policy of stage {args.stage}: already allows {name}")
            return 0
        ssm = ssm_client()
        if args.rotate:
            wait = ttl_seconds(args.stage) + WAIT_MARGIN_SECONDS if args.wait is None else max(args.wait, 0.0)
            # The stage's deploy lock: a deploy that read the old value before step 1 must not give it back to
            # CloudFront after step 4.
            deploy_lock.acquire(ssm, args.stage, deploy_lock.holder(os.getpid()))
            try:
                rotate(ssm, name, update_stack=lambda: update_stack(args.stage), wait_seconds=wait, sleep=sleep)
            finally:
                deploy_lock.release(ssm, args.stage, deploy_lock.whoami(), os.getpid())
        else:
            ensure(ssm, name)
            print(f"origin secret {name}: present")
        found = read(ssm, name)
        changed = write_api_policy(args.stage, name, arn=found[1] if found else None)
        if changed:
            print(f"wrote {changed}: the API may read {name} (commit it)")
    except Exception as exc:  # noqa: BLE001 - report() re-raises what is neither expected nor AWS's
        return report("deploy.origin_secret", exc, (OriginSecretError, StageError, deploy_lock.LockHeld))
    return 0


if __name__ == "__main__":
    sys.exit(main())
