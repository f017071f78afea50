"""The Chalice app of a shared stage as a CloudFormation stack, `predictions-<stage>-app`.

    python -m deploy.app_stack --stage prod              # package, upload, change set, wait
    python -m deploy.app_stack --stage prod --dry-run    # package and show the change set, change nothing
    python -m deploy.app_stack --stage prod --outputs    # the app stack's outputs as JSON

Why a stack: `chalice deploy` keeps its record of what it deployed in `.chalice/deployed/`, a git-ignored
folder on one machine, so every fresh clone (another operator, CI) deployed a second REST API. A stack keeps
that record in CloudFormation, where every operator finds it. `chalice deploy --stage dev` stays the quick
path for one developer's own stage (docs/deploy.md).

The steps:
1. a merge template (`merge_template`, written to build/app-merge-<stage>.json) names every function as
   `chalice deploy` would (`predictions-<stage>`, `-warmer`, `-site`: the warmer, the prewarm command and the
   alarms target those names) and gives the REST API its name;
2. `python -m deploy.chalice_cli package --stage S --merge-template FILE build/package-S` (the stage's runtime);
3. deployment.zip goes to the stage stack's artifact bucket (output `ArtifactBucketName`) under a key made
   from a hash of its contents (member names and bytes, not the zip's timestamps): an unchanged build from
   another machine maps to the same key, so the change set sees no code change; an existing key is not
   uploaded again; every CodeUri then points at it;
4. a change set on the app stack (deploy/stack.py `run_change_set`: CREATE the first time, UPDATE after,
   "no changes" is a success), with the SAM transform done by CloudFormation;
5. the outputs: `RestAPIId` gives the API's domain, which deploy/stack.py passes to the stage stack.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import Any

from chalice_app.config.stage_file import StageError, load_config
from deploy import app_template, stack
from deploy.command_errors import report
from deploy.release_files import content_hash

PROJECT_DIR = stack.PROJECT_DIR
CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND")
SERVERLESS_FUNCTION = "AWS::Serverless::Function"
SERVERLESS_API = "AWS::Serverless::Api"
ARTIFACT_PREFIX = "app"
Progress = Callable[[str], None]
Packager = Callable[[list[str], str], int]
TemplateHook = Callable[[dict], dict]


def stage_functions(stage: str, config: dict) -> list[str]:
    """Chalice's logical ids of the functions this stage has: the API always, the warmer, the site function and
    the pre-traffic hook when their switches are on (read by app.py's own rules: deploy/stack.py `switches`)."""
    from chalice_app import canary

    env = {**config.get("environment_variables", {}),
           **config.get("stages", {}).get(stage, {}).get("environment_variables", {})}
    warmer, site_function = stack.switches(stage, env)
    return ["APIHandler", *(["Warmer"] if warmer else []), *(["Site"] if site_function else []),
            *(["PreTraffic"] if canary.enabled(env) else [])]


def api_routes() -> dict:
    """Chalice's routes of app.py ({path: {method: entry}}): every one gets the alias."""
    from chalice_app.api.routes import app

    return app.routes


def merge_template(stage: str, app_name: str, functions: Iterable[str], config: dict | None = None) -> dict:
    """What `chalice package --merge-template` deep-merges into sam.json (deploy/app_template.py)."""
    section = (config or {}).get("stages", {}).get(stage, {})
    return app_template.merge_template(stage, app_name, functions, app_template.app_settings(stage, section),
                                       api_routes())


def check_names(template: dict, stage: str, app_name: str) -> None:
    """Fail before deploying when a function would get a generated name (the warmer and alarms would miss it)."""
    unnamed = [k for k, v in template.get("Resources", {}).items()
               if v.get("Type") == SERVERLESS_FUNCTION and not v.get("Properties", {}).get("FunctionName")]
    typeless = [k for k, v in template.get("Resources", {}).items() if "Type" not in v]
    if unnamed or typeless:
        raise stack.StackError(f"stage {stage}: the package of {app_name} has unnamed functions {unnamed} or merged "
                               f"resources Chalice did not generate {typeless}: deploy/app_template.py FUNCTIONS is "
                               "out of date with the app")
    off_alias = app_template.check_alias(template)
    if off_alias:
        raise stack.StackError(f"stage {stage}: API Gateway would reach the API function past its alias "
                               f"{app_template.ALIAS!r}: " + "; ".join(off_alias))


def artifact_key(stage: str, digest: str) -> str:
    return f"{ARTIFACT_PREFIX}/{stage}/{digest}.zip"


def with_code_uri(template: dict, bucket: str, key: str) -> dict:
    """A copy of the template whose every function's CodeUri is s3://bucket/key."""
    out = copy.deepcopy(template)
    for resource in out.get("Resources", {}).values():
        if resource.get("Type") == SERVERLESS_FUNCTION:
            resource.setdefault("Properties", {})["CodeUri"] = f"s3://{bucket}/{key}"
    globals_ = out.get("Globals", {}).get("Function", {})
    if "CodeUri" in globals_:
        globals_["CodeUri"] = f"s3://{bucket}/{key}"
    return out


def upload_once(s3: Any, bucket: str, key: str, path: str, progress: Progress = print) -> bool:
    """Upload `path` to s3://bucket/key unless that key exists (same contents: the key is their hash)."""
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
        progress(f"code s3://{bucket}/{key}: there already (same contents), not uploaded")
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    with open(path, "rb") as fh:
        s3.put_object(Bucket=bucket, Key=key, Body=fh, ContentType="application/zip")
    progress(f"code s3://{bucket}/{key}: uploaded ({os.path.getsize(path)} bytes)")
    return True


def _package(args: list[str], project_dir: str) -> int:
    """chalice package in its own process: Chalice imports app.py once per process, from the project's folder."""
    return subprocess.run([sys.executable, "-m", "deploy.chalice_cli", *args], cwd=project_dir,
                          check=False).returncode


def package(stage: str, app_name: str, config: dict, project_dir: str, run: Packager = _package) -> tuple[dict, str]:
    """Write the merge template, run chalice package into build/package-<stage>; (sam.json, zip path)."""
    build = os.path.join(project_dir, "build")
    out = os.path.join(build, f"package-{stage}")
    merge_path = os.path.join(build, f"app-merge-{stage}.json")
    os.makedirs(build, exist_ok=True)
    with open(merge_path, "w", encoding="utf-8") as fh:
        json.dump(merge_template(stage, app_name, stage_functions(stage, config), config), fh, indent=2)
    shutil.rmtree(out, ignore_errors=True)  # a stale zip must never be what gets deployed
    code = run(["package", "--stage", stage, "--merge-template", os.path.relpath(merge_path, project_dir),
                os.path.relpath(out, project_dir)], project_dir)
    if code != 0:
        raise stack.StackError(f"chalice package --stage {stage} failed (exit code {code})")
    with open(os.path.join(out, "sam.json"), encoding="utf-8") as fh:
        template = json.load(fh)
    check_names(template, stage, app_name)
    return template, os.path.join(out, "deployment.zip")


def deploy_app(cfn: Any, s3: Any, stage: str, region: str, *, project_dir: str = PROJECT_DIR,
               dry_run: bool = False, progress: Progress = print, delay: float = 10.0,
               run: Packager = _package, prepare_template: TemplateHook | None = None,
               release_dir: str | None = None) -> dict[str, Any]:
    """Package the app (or take the stage's package from the release in `release_dir`: deploy/release.py),
    upload its code once, create or update the app stack; run_change_set's result plus "api_domain" and "key".

    `prepare_template` sees the template after the CodeUris point at S3 and before it is sent: a test seam
    for emulators that cannot run the SAM transform. In production it is None and CloudFormation transforms.
    """
    config = load_config(os.path.join(project_dir, ".chalice", "config.json"))
    app_name = config["app_name"]
    site = stack._current(cfn, stack.stack_name(stage, app_name))
    bucket = stack.outputs_of(site).get("ArtifactBucketName", "") if site else ""
    if not bucket:
        raise stack.StackError(f"stack {stack.stack_name(stage, app_name)} has no ArtifactBucketName output: run "
                               f"`python -m deploy.stack --stage {stage}` first (make deploy does)")
    if release_dir:
        from deploy import release_files

        built = release_files.load(release_dir, stage, project_dir=project_dir)
        template, zip_path = built.template, built.zip_path
        check_names(template, stage, app_name)
        progress(f"release {release_dir}: code {built.manifest['content_sha256'][:12]} of commit "
                 f"{built.manifest.get('commit') or '(unknown)'}, built {built.manifest.get('built_at')}")
    else:
        template, zip_path = package(stage, app_name, config, project_dir, run)
    key = artifact_key(stage, content_hash(zip_path))
    if not dry_run:
        upload_once(s3, bucket, key, zip_path, progress)
    template = with_code_uri(template, bucket, key)
    if prepare_template is not None:
        template = prepare_template(template)
    body = json.dumps(template, separators=(",", ":"), sort_keys=True)
    template_url = None
    if len(body.encode("utf-8")) > stack.TEMPLATE_BODY_LIMIT and not dry_run:
        # Larger templates go through S3; keyed by their hash like the code, so a re-send is the same object.
        template_key = f"{ARTIFACT_PREFIX}/{stage}/template-{hashlib.sha256(body.encode()).hexdigest()}.json"
        s3.put_object(Bucket=bucket, Key=template_key, Body=body.encode("utf-8"), ContentType="application/json")
        template_url = f"https://{bucket}.s3.{region}.amazonaws.com/{template_key}"
    result = stack.run_change_set(cfn, stack.app_stack_name(stage, app_name), {}, body=body,
                                  template_url=template_url, capabilities=CAPABILITIES, tags={"stage": stage},
                                  description=f"make deploy STAGE={stage}: the Chalice app", dry_run=dry_run,
                                  progress=progress, delay=delay)
    result["api_domain"] = stack.api_domain_from_outputs(result["outputs"], region)
    result["key"] = key
    return result


def _clients() -> tuple[Any, Any, str]:
    import boto3

    session = boto3.session.Session()
    if not session.region_name:
        raise stack.StackError("no region: set AWS_DEFAULT_REGION")
    return session.client("cloudformation"), session.client("s3"), session.region_name


def main(argv: list[str] | None = None, clients: Callable[[], tuple[Any, Any, str]] = _clients,
         project_dir: str = PROJECT_DIR, prepare_template: TemplateHook | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m deploy.app_stack",
        description="Deploy a stage's Chalice app (API, warmer, site function) as the CloudFormation stack "
                    "<app>-<stage>-app: chalice package, upload the code once, change set.")
    p.add_argument("--stage", required=True, help="a stage of .chalice/config.json (dev, prod)")
    p.add_argument("--dry-run", action="store_true", help="package and show the change set, change nothing")
    p.add_argument("--outputs", action="store_true", help="print the app stack's outputs as JSON")
    p.add_argument("--release", metavar="DIR", help="deploy the stage's package from the release in DIR "
                                                     "(python -m deploy.release) instead of packaging")
    args = p.parse_args(argv)
    try:
        cfn, s3, region = clients()
        if args.outputs:
            name = stack.app_stack_name(args.stage, load_config(os.path.join(project_dir, ".chalice",
                                                                             "config.json"))["app_name"])
            found = stack._current(cfn, name)
            if not found:
                raise stack.StackError(f"stack {name} not found: run `make deploy STAGE={args.stage}` first")
            print(json.dumps(stack.outputs_of(found), indent=2, sort_keys=True))
            return 0
        result = deploy_app(cfn, s3, args.stage, region, project_dir=project_dir, dry_run=args.dry_run,
                            prepare_template=prepare_template, release_dir=args.release)
    except Exception as exc:  # noqa: BLE001 - report() re-raises what is neither expected nor AWS's
        return report("deploy.app_stack", exc, (stack.StackError, StageError))
    if not args.dry_run:
        print(f"app of stage {args.stage}: API https://{result['api_domain'] or '(no RestAPIId output)'}/api/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
