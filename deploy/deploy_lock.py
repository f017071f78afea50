"""One deploy of a stage at a time: a lock in Parameter Store, `/<app_name>/deploy-locks/<stage>`.

    python -m deploy.deploy_lock --stage prod --show      # who holds it, since when
    python -m deploy.deploy_lock --stage prod --break     # free it (the deploy that held it is dead)
    python -m deploy.deploy_lock --stage prod --acquire   # what `make deploy` does first
    python -m deploy.deploy_lock --stage prod --release   # ... and last, when it exits cleanly

Taking the lock is one `put_parameter(Overwrite=False)`: Parameter Store creates the parameter or answers
ParameterAlreadyExists, atomically, so two operators (or an operator and CI) cannot both get it. It holds
JSON: who (user@host), started (UTC), pid (of the deploy), commit (when known). It is released only by the
deploy that took it (same who and pid), when that deploy ends, successfully or not; a deploy that crashed
or was interrupted leaves it held on purpose, because its stacks may still be changing: look at them, then
`--break`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from chalice_app.config.stage_file import CONFIG_PATH, StageError, load_config
from deploy.command_errors import report

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LockError(Exception):
    """One clear message for the user."""


class LockHeld(LockError):
    def __init__(self, stage: str, holder: dict) -> None:
        self.holder = holder
        super().__init__(
            f"stage {stage} is being deployed by {holder.get('who', '?')} since {holder.get('started', '?')} "
            f"(pid {holder.get('pid', '?')}, commit {holder.get('commit') or 'unknown'}): wait for that deploy to "
            f"finish. If it is dead (its machine crashed, it was interrupted), check its stacks are not changing "
            f"and break the lock: python -m deploy.deploy_lock --stage {stage} --break")


def lock_name(stage: str, app_name: str = "predictions") -> str:
    return f"/{app_name}/deploy-locks/{stage}"


def _commit(project_dir: str) -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=project_dir, capture_output=True,
                              text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def whoami() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def holder(pid: int, *, project_dir: str = PROJECT_DIR, now: datetime | None = None) -> dict:
    """What the lock says about the deploy that holds it."""
    started = (now or datetime.now(UTC)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {"who": whoami(), "started": started, "pid": pid, "commit": _commit(project_dir)}


def _code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def show(ssm: Any, stage: str, app_name: str = "predictions") -> dict | None:
    """The holder, or None when the stage is free."""
    from botocore.exceptions import ClientError

    try:
        value = ssm.get_parameter(Name=lock_name(stage, app_name))["Parameter"]["Value"]
    except ClientError as exc:
        if _code(exc) == "ParameterNotFound":
            return None
        raise
    try:
        return json.loads(value)
    except ValueError:
        return {"who": value}  # written by hand: still held, shown as it is


def acquire(ssm: Any, stage: str, record: dict, app_name: str = "predictions") -> None:
    """Take the lock or raise LockHeld naming who has it."""
    from botocore.exceptions import ClientError

    try:
        ssm.put_parameter(Name=lock_name(stage, app_name), Value=json.dumps(record, sort_keys=True), Type="String",
                          Overwrite=False, Description=f"make deploy STAGE={stage} is running (deploy/deploy_lock.py)")
    except ClientError as exc:
        if _code(exc) != "ParameterAlreadyExists":
            raise
        raise LockHeld(stage, show(ssm, stage, app_name) or {"who": "(released just now)"}) from None


def _delete(ssm: Any, stage: str, app_name: str) -> None:
    from botocore.exceptions import ClientError

    try:
        ssm.delete_parameter(Name=lock_name(stage, app_name))
    except ClientError as exc:
        if _code(exc) != "ParameterNotFound":
            raise


def release(ssm: Any, stage: str, who: str, pid: int, app_name: str = "predictions") -> dict | None:
    """Free the lock if this deploy (who, pid) holds it; the holder found (None: it was free)."""
    found = show(ssm, stage, app_name)
    if found is None:
        return None
    if found.get("who") != who or found.get("pid") != pid:
        raise LockHeld(stage, found)
    # Parameter Store has no conditional delete: between the read and the delete only --break (by a human who
    # saw this deploy as dead) could have changed it.
    _delete(ssm, stage, app_name)
    return found


def break_lock(ssm: Any, stage: str, app_name: str = "predictions") -> dict | None:
    """Free the lock whoever holds it; the holder it had (None: it was free)."""
    found = show(ssm, stage, app_name)
    if found is not None:
        _delete(ssm, stage, app_name)
    return found


def _ssm() -> Any:
    import boto3

    session = boto3.session.Session()
    if not session.region_name:
        raise LockError("no region: set AWS_DEFAULT_REGION")
    return session.client("ssm")


def main(argv: list[str] | None = None, client: Callable[[], Any] = _ssm, config_path: str = CONFIG_PATH,
         project_dir: str = PROJECT_DIR) -> int:
    p = argparse.ArgumentParser(
        prog="python -m deploy.deploy_lock",
        description="The deploy lock of a stage (Parameter Store /<app_name>/deploy-locks/<stage>): one "
                    "`make deploy` per stage at a time. --show and --break are for people; make deploy "
                    "uses --acquire and --release.")
    p.add_argument("--stage", required=True, help="a stage of .chalice/config.json (dev, prod)")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--show", action="store_true", help="print who holds the lock, since when (JSON)")
    action.add_argument("--break", dest="break_", action="store_true",
                        help="free the lock whoever holds it: only when that deploy is dead")
    action.add_argument("--acquire", action="store_true", help="take the lock; exit 1 naming the holder if held")
    action.add_argument("--release", action="store_true", help="free the lock this deploy (user@host, pid) took")
    p.add_argument("--pid", type=int, default=os.getppid(),
                   help="the deploy's process id (default: the parent process, i.e. the deploy.stage that runs this)")
    args = p.parse_args(argv)
    try:
        app_name = load_config(config_path)["app_name"]
        if args.stage not in load_config(config_path).get("stages", {}):
            raise StageError(f"unknown stage {args.stage!r}")
        ssm = client()
        name = lock_name(args.stage, app_name)
        if args.show:
            found = show(ssm, args.stage, app_name)
            print(json.dumps(found, indent=2, sort_keys=True) if found else f"{name}: free")
        elif args.break_:
            found = break_lock(ssm, args.stage, app_name)
            print(f"{name}: broken, it was held by {found.get('who', '?')} since {found.get('started', '?')} "
                  f"(pid {found.get('pid', '?')})" if found else f"{name}: was free")
        elif args.acquire:
            record = holder(args.pid, project_dir=project_dir)
            acquire(ssm, args.stage, record, app_name)
            print(f"{name}: taken by {record['who']} (pid {record['pid']})")
        else:
            found = release(ssm, args.stage, whoami(), args.pid, app_name)
            print(f"{name}: released" if found else f"{name}: was free already (broken by someone?)")
    except Exception as exc:  # noqa: BLE001 - report() re-raises what is neither expected nor AWS's
        return report("deploy.deploy_lock", exc, (LockError, StageError))
    return 0


if __name__ == "__main__":
    sys.exit(main())
