"""The pre-traffic hook of a canary deploy: the new version answers before it gets any traffic.

CodeDeploy calls this function (`<app>-<stage>-pretraffic`) after it published a new version of the API
function and before it shifts the alias `live` toward it. The hook invokes that exact version the way API
Gateway would (a REST proxy event) for `GET /health` and one real batch read (`GET /predictions/latest`,
one row) and reports Succeeded or Failed to CodeDeploy; a failure stops the deployment before one reader is
sent to the new version, and CloudFormation rolls the stack back. deploy/app_template.py wires it
(`DeploymentPreference.Hooks.PreTraffic`) and gives it `TARGET_FUNCTION` and `TARGET_VERSION`.

A stage with no batch yet answers the read with 404 `batch_not_found`: that passes (the version did read S3
and answered in the API's shape), so the first deploys of a stage are not rolled back for want of data.

Registered only when the stage's `CANARY_DEPLOYS` is true (read at import like the warmer's switch); the
API imports this module to register the blueprint, so its module level is the standard library and chalice.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from chalice import Blueprint

from chalice_app.logs import log_event

HOOK_NAME = "pre_traffic"  # deployed as {app}-{stage}-pretraffic (deploy/app_template.py FUNCTIONS)
# path -> the statuses a healthy version may answer, and what its JSON must carry.
CHECKS: tuple[tuple[str, dict[str, str], frozenset[int]], ...] = (
    ("/health", {}, frozenset({200})),
    ("/predictions/{date}", {"date": "latest"}, frozenset({200, 404})),
)


class CanaryConfigError(ValueError):
    """A setting of the canary cannot be used; the message names it."""


def enabled(env: Mapping[str, str]) -> bool:
    value = env.get("CANARY_DEPLOYS", "").strip().lower()
    if value in ("", "false", "0", "no", "off"):
        return False
    if value not in ("true", "1", "yes", "on"):
        raise CanaryConfigError(f"CANARY_DEPLOYS={value!r}: expected true or false")
    return True


def proxy_event(resource: str, params: Mapping[str, str], query: Mapping[str, str],
                headers: Mapping[str, str]) -> dict[str, Any]:
    """A REST API (v1) Lambda proxy event for GET `resource`, as API Gateway sends it."""
    path = resource
    for name, value in params.items():
        path = path.replace("{" + name + "}", value)
    return {
        "resource": resource, "path": path, "httpMethod": "GET",
        "headers": dict(headers), "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": dict(query) or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None,
        "pathParameters": dict(params) or None, "stageVariables": None, "body": None, "isBase64Encoded": False,
        "requestContext": {"resourcePath": resource, "httpMethod": "GET", "path": f"/api{path}", "stage": "api",
                           "requestId": f"pre-traffic-{int(time.time() * 1000)}", "apiId": "pre-traffic",
                           "identity": {"sourceIp": "127.0.0.1", "userAgent": "pre-traffic-hook"}},
    }


Invoke = Callable[[dict[str, Any]], dict[str, Any]]


def check_version(invoke: Invoke, headers: Mapping[str, str] | None = None) -> list[str]:
    """Each check's failure, in words (empty: the version is healthy). `invoke` sends one event to the version
    and returns what the function returned (a proxy answer: statusCode, headers, body)."""
    failures = []
    base = {"Accept": "application/json", **(headers or {})}
    for resource, params, ok in CHECKS:
        query = {"limit": "1"} if params else {}
        where = f"GET {proxy_event(resource, params, query, {})['path']}"
        try:
            answer = invoke(proxy_event(resource, params, query, base))
        except Exception as exc:  # noqa: BLE001 - any failure to answer is the verdict
            failures.append(f"{where}: the version did not answer ({type(exc).__name__}: {exc})")
            continue
        status = answer.get("statusCode")
        try:
            body = json.loads(answer.get("body") or "")
        except (TypeError, ValueError):
            failures.append(f"{where}: status {status}, a body that is not JSON: {str(answer.get('body'))[:200]!r}")
            continue
        if status not in ok:
            failures.append(f"{where}: status {status}, expected {sorted(ok)}: {json.dumps(body)[:200]}")
        elif status == 404 and body.get("error", {}).get("code") != "batch_not_found":
            failures.append(f"{where}: 404 {json.dumps(body)[:200]}, expected a batch or batch_not_found")
        elif resource == "/health" and body.get("status") != "ok":
            failures.append(f"{where}: health says {json.dumps(body)[:200]}")
        elif status == 200 and params and not isinstance(body.get("items"), list):
            failures.append(f"{where}: 200 without items: {json.dumps(body)[:200]}")
    return failures


def lambda_invoker(client: Any, function: str, version: str) -> Invoke:
    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        response = client.invoke(FunctionName=function, Qualifier=version, InvocationType="RequestResponse",
                                 Payload=json.dumps(event).encode())
        payload = response["Payload"].read()
        if response.get("FunctionError"):
            raise RuntimeError(f"{response['FunctionError']}: {payload[:300]!r}")
        return json.loads(payload)
    return invoke


def origin_headers(env: Mapping[str, str]) -> dict[str, str]:
    """The header CloudFront adds to API requests, when the stage locks its origin (else none): the new version
    refuses a request without it, as it refuses a direct call to the API (chalice_app/api/origin.py)."""
    from chalice_app.api import origin

    if not origin.parameter_name(env):
        return {}
    return {origin.HEADER: origin.current_secret(env)}


def run(event: Mapping[str, Any], env: Mapping[str, str], lambda_client: Any, codedeploy: Any) -> dict[str, Any]:
    """Check the version named by the environment, report to CodeDeploy, return the verdict."""
    function, version = env.get("TARGET_FUNCTION", ""), env.get("TARGET_VERSION", "")
    if not function or not version:
        failures = ["TARGET_FUNCTION and TARGET_VERSION must be set (deploy/app_template.py sets them)"]
    else:
        try:
            headers = origin_headers(env)
        except Exception as exc:  # noqa: BLE001 - without the secret every check would be refused
            failures = [f"the origin secret could not be read ({type(exc).__name__}: {exc})"]
        else:
            failures = check_version(lambda_invoker(lambda_client, function, version), headers)
    status = "Failed" if failures else "Succeeded"
    log_event("pre_traffic_hook", function=function, version=version, status=status, failures=failures,
              deployment=event.get("DeploymentId"))
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"], lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status=status)
    return {"status": status, "failures": failures}


blueprint = Blueprint(__name__)


def pre_traffic(event: Any, context: Any) -> dict[str, Any]:
    """The Lambda handler CodeDeploy invokes."""
    import boto3  # the runtime's; this function's container only, once per invocation of a deploy

    return run(event, os.environ, boto3.client("lambda"), boto3.client("codedeploy"))


if enabled(os.environ):
    # Rebinding the name matters: Chalice points the handler at `chalice_app.canary.pre_traffic`.
    pre_traffic = blueprint.lambda_function(name=HOOK_NAME)(pre_traffic)
