"""What the app stack adds to Chalice's package: the merge template (`chalice package --merge-template`).

Chalice writes the functions, the REST API and its Swagger; this module deep-merges into them, per stage:

- the names `chalice deploy` gives (`predictions-<stage>`, `-warmer`, `-site`, `-pretraffic`): the warmer, the
  prewarm command and the alarms find the functions by them;
- **canary deploys**: the API function is published as a version behind the alias `live`
  (`AutoPublishAlias`); every route's integration calls the alias, not the unqualified function (which is
  `$LATEST`), and API Gateway's invoke permission names the alias (a permission on the unqualified function
  covers only the unqualified ARN); CodeDeploy shifts traffic to a new version as the stage says
  (`deployment.traffic_shifting`, default 10 % for 5 minutes) and rolls back when one of the canary alarms
  fires or the pre-traffic hook (chalice_app/warming/pre_traffic.py) fails; CodeDeploy's role is ours, scoped
  to the alias and the hook;
- **the stage throttle** (`api_throttle`: rate and burst) on every method of the API's stage, and the
  throttled answer (429, the API's error shape, `Retry-After`) from deploy/api_gateway.py;
- **logs**: every function's log group with the stage's retention (`log_retention_days`; Chalice's own
  `log_retention_in_days` makes a template whose API log group refers to nothing), the API stage's access log
  in JSON, and a saved Logs Insights query for the slowest requests.

Settings are read and checked by `app_settings` (a wrong value stops the package, naming the key);
docs/settings.md lists them, docs/deploy.md ("Run it as a team") says what they do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chalice_app.config.stage_file import StageError

ALIAS = "live"
# Chalice's logical ids -> the suffix `chalice deploy` gives the function's name ({app}-{stage}{suffix}).
# "warmer", "site" and "pre_traffic" are the names the app registers (chalice_app/warming/scheduled.py,
# chalice_app/site_trigger.py, chalice_app/warming/pre_traffic.py).
FUNCTIONS = {"APIHandler": "", "Warmer": "-warmer", "Site": "-site", "PreTraffic": "-pretraffic"}
# SAM's DeploymentPreference types (AWS's list for Lambda: CodeDeploy's predefined configurations).
TRAFFIC_SHIFTING = (
    "Canary10Percent5Minutes", "Canary10Percent10Minutes", "Canary10Percent15Minutes", "Canary10Percent30Minutes",
    "Linear10PercentEvery1Minute", "Linear10PercentEvery2Minutes", "Linear10PercentEvery3Minutes",
    "Linear10PercentEvery10Minutes", "AllAtOnce")
# CloudWatch Logs accepts only these retention periods.
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                  3288, 3653)
API_STAGE = "api"  # .chalice/config.json api_gateway_stage
# The access log line: one JSON object per request, API Gateway's $context variables.
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId", "ip": "$context.identity.sourceIp", "time": "$context.requestTime",
    "method": "$context.httpMethod", "path": "$context.path", "route": "$context.resourcePath",
    "status": "$context.status", "length": "$context.responseLength", "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency", "integrationStatus": "$context.integrationStatus",
    "error": "$context.error.responseType", "userAgent": "$context.identity.userAgent",
}
SLOWEST_QUERY = ("filter event = \"request_metrics\"\n"
                 "| fields @timestamp, RequestId, Route, Status, LatencyMs, ColdStart, CacheHit, Date, Model\n"
                 "| sort LatencyMs desc\n| limit 50")


@dataclass(frozen=True)
class AppSettings:
    """A stage's app-stack settings, from its section of .chalice/config.json."""

    traffic_shifting: str = "Canary10Percent5Minutes"
    canary_error_rate: float = 0.05
    canary_p99_latency_ms: int = 3000
    rate_limit: float = 100.0
    burst_limit: int = 200
    log_retention_days: int = 30
    access_logs: bool = True


def _number(where: str, value: object, low: float, high: float, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)) \
            or not low <= value <= high:
        kind = "a whole number" if integer else "a number"
        raise StageError(f"{where}={value!r}: expected {kind} from {low:g} to {high:g}")
    return value


def app_settings(stage: str, section: Mapping[str, Any]) -> AppSettings:
    """The stage's settings (`deployment`, `api_throttle`, `log_retention_days`, `api_access_logs`), checked."""
    defaults = AppSettings()
    deployment = section.get("deployment") or {}
    throttle = section.get("api_throttle") or {}
    for key, value, known in (("deployment", deployment, {"traffic_shifting", "error_rate", "p99_latency_ms"}),
                              ("api_throttle", throttle, {"rate_limit", "burst_limit"})):
        if not isinstance(value, dict):
            raise StageError(f"stage {stage}: {key} must be an object, got {value!r}")
        unknown = sorted(set(value) - known)
        if unknown:
            raise StageError(f"stage {stage}: {key} has unknown keys {unknown}; known: {sorted(known)}")
    shifting = deployment.get("traffic_shifting", defaults.traffic_shifting)
    if shifting not in TRAFFIC_SHIFTING:
        raise StageError(f"stage {stage}: deployment.traffic_shifting={shifting!r}: expected one of "
                         f"{', '.join(TRAFFIC_SHIFTING)}")
    retention = section.get("log_retention_days", defaults.log_retention_days)
    if retention not in RETENTION_DAYS or isinstance(retention, bool):
        raise StageError(f"stage {stage}: log_retention_days={retention!r}: CloudWatch Logs accepts "
                         f"{', '.join(map(str, RETENTION_DAYS))}")
    access = section.get("api_access_logs", defaults.access_logs)
    if not isinstance(access, bool):
        raise StageError(f"stage {stage}: api_access_logs={access!r}: expected true or false")
    rate = _number(f"stage {stage}: api_throttle.rate_limit", throttle.get("rate_limit", defaults.rate_limit),
                   1, 10000)
    burst = _number(f"stage {stage}: api_throttle.burst_limit", throttle.get("burst_limit", defaults.burst_limit),
                    1, 5000, integer=True)
    return AppSettings(
        traffic_shifting=shifting,
        canary_error_rate=_number(f"stage {stage}: deployment.error_rate",
                                  deployment.get("error_rate", defaults.canary_error_rate), 0.001, 1),
        canary_p99_latency_ms=int(_number(f"stage {stage}: deployment.p99_latency_ms",
                                          deployment.get("p99_latency_ms", defaults.canary_p99_latency_ms),
                                          50, 29000, integer=True)),
        rate_limit=rate, burst_limit=int(burst), log_retention_days=retention, access_logs=access)


def function_name(stage: str, app_name: str, logical: str) -> str:
    return f"{app_name}-{stage}{FUNCTIONS[logical]}"


def alias_uri() -> dict:
    """An integration's URI on the alias: SAM resolves `APIHandler.Alias` to the alias' ARN."""
    return {"Fn::Sub": ["arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
                        "${Target}/invocations", {"Target": {"Ref": "APIHandler.Alias"}}]}


def route_paths(routes: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The Swagger `paths` to merge: every route's every method integrated with the alias.

    `routes` is Chalice's `app.routes` ({path: {method: entry}}); the same names Chalice's Swagger uses."""
    paths: dict[str, dict[str, Any]] = {}
    for path, methods in routes.items():
        for method in methods:
            paths.setdefault(path, {})[method.lower()] = {"x-amazon-apigateway-integration": {"uri": alias_uri()}}
    return paths


def _alarm(name: str, description: str, namespace: str, metric: str, dimensions: list[dict], threshold: Any,
           statistic: str, evaluation: int = 1, datapoints: int = 1) -> dict:
    props: dict[str, Any] = {
        "AlarmName": name, "AlarmDescription": description, "Namespace": namespace, "MetricName": metric,
        "Dimensions": dimensions, "Period": 60, "EvaluationPeriods": evaluation, "DatapointsToAlarm": datapoints,
        "Threshold": threshold, "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching"}
    if statistic.startswith("p"):
        props["ExtendedStatistic"] = statistic
    else:
        props["Statistic"] = statistic
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": props}


def canary_alarms(stage: str, app_name: str, settings: AppSettings) -> dict[str, dict]:
    """Fast alarms CodeDeploy watches while it shifts traffic (one-minute periods: the stage stack's alarms
    take 10-15 minutes to fire, longer than a canary lasts)."""
    api = [{"Name": "ApiName", "Value": app_name}, {"Name": "Stage", "Value": API_STAGE}]
    name = function_name(stage, app_name, "APIHandler")
    return {
        "CanaryErrorRateAlarm": _alarm(
            f"{app_name}-{stage}-CanaryErrorRate",
            "API Gateway 5xx rate above deployment.error_rate in 2 of 3 minutes: CodeDeploy rolls back",
            "AWS/ApiGateway", "5XXError", api, settings.canary_error_rate, "Average", evaluation=3, datapoints=2),
        "CanaryLatencyAlarm": _alarm(
            f"{app_name}-{stage}-CanaryLatency",
            "API Gateway p99 latency above deployment.p99_latency_ms in 2 of 3 minutes: CodeDeploy rolls back",
            "AWS/ApiGateway", "Latency", api, settings.canary_p99_latency_ms, "p99", evaluation=3, datapoints=2),
        "CanaryNewVersionErrorsAlarm": _alarm(
            f"{app_name}-{stage}-CanaryNewVersionErrors",
            "The new version of the API function raised errors (crash at import, timeout): CodeDeploy rolls back",
            "AWS/Lambda", "Errors",
            [{"Name": "FunctionName", "Value": name}, {"Name": "Resource", "Value": f"{name}:{ALIAS}"},
             {"Name": "ExecutedVersion", "Value": {"Fn::GetAtt": ["APIHandler.Version", "Version"]}}],
            0, "Sum"),
    }


def codedeploy_role(stage: str, app_name: str) -> dict:
    """CodeDeploy's role for the traffic shift: the alias and the hook of this stage, the canary alarms.

    SAM's default role carries AWSCodeDeployRoleForLambda (UpdateAlias on every function of the account)."""
    name = function_name(stage, app_name, "APIHandler")
    hook = function_name(stage, app_name, "PreTraffic")
    fn = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"
    return {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "codedeploy.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
        "Policies": [{"PolicyName": "ShiftTheAliasOfThisStageOnly", "PolicyDocument": {
            "Version": "2012-10-17", "Statement": [
                {"Sid": "TheAlias", "Effect": "Allow",
                 "Action": ["lambda:GetAlias", "lambda:UpdateAlias", "lambda:GetProvisionedConcurrencyConfig"],
                 "Resource": [{"Fn::Sub": f"{fn}{name}"}, {"Fn::Sub": f"{fn}{name}:*"}]},
                {"Sid": "TheHook", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
                 "Resource": [{"Fn::Sub": f"{fn}{hook}"}, {"Fn::Sub": f"{fn}{hook}:*"}]},
                {"Sid": "TheAlarms", "Effect": "Allow", "Action": ["cloudwatch:DescribeAlarms"],
                 "Resource": [{"Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:"
                                          f"alarm:{alarm['Properties']['AlarmName']}"}
                              for alarm in canary_alarms(stage, app_name, AppSettings()).values()]},
            ]}}]}}


def log_resources(stage: str, app_name: str, functions: Iterable[str], settings: AppSettings) -> dict[str, dict]:
    """Each function's log group (the logical ids Chalice's own `log_retention_in_days` used: a stack that had
    them keeps them), the access log and the saved query. No Retain: a stack deleted after a failed first
    create must be creatable again, which a kept log group of the same name would stop."""
    found: dict[str, dict] = {}
    for logical in functions:
        found[f"{logical}LogGroup"] = {"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": f"/aws/lambda/{function_name(stage, app_name, logical)}",
            "RetentionInDays": settings.log_retention_days}}
    if settings.access_logs:
        found["ApiAccessLogGroup"] = {"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": f"/aws/apigateway/{app_name}-{stage}-access",
            "RetentionInDays": settings.log_retention_days}}
    found["SlowestRequestsQuery"] = {"Type": "AWS::Logs::QueryDefinition", "Properties": {
        "Name": f"{app_name}-{stage}/slowest requests",
        "LogGroupNames": [f"/aws/lambda/{function_name(stage, app_name, 'APIHandler')}"],
        "QueryString": SLOWEST_QUERY}}
    return found


def merge_template(stage: str, app_name: str, functions: Iterable[str], settings: AppSettings,
                   routes: Mapping[str, Mapping[str, Any]]) -> dict:
    """What `chalice package --merge-template` deep-merges into sam.json for this stage.

    Only functions the stage has: a merged resource without its Type would make the template invalid.
    """
    functions = list(functions)
    resources: dict[str, Any] = {
        logical: {"Properties": {"FunctionName": function_name(stage, app_name, logical)}} for logical in functions}
    canary = "PreTraffic" in functions
    api = resources["APIHandler"]["Properties"]
    api["AutoPublishAlias"] = ALIAS
    if canary:
        api["DeploymentPreference"] = {
            "Type": settings.traffic_shifting,
            "Role": {"Fn::GetAtt": ["CodeDeployRole", "Arn"]},
            "Alarms": [{"Ref": logical} for logical in canary_alarms(stage, app_name, settings)],
            "Hooks": {"PreTraffic": {"Ref": "PreTraffic"}}}
        resources["PreTraffic"]["Properties"]["Environment"] = {"Variables": {
            "TARGET_FUNCTION": function_name(stage, app_name, "APIHandler"),
            "TARGET_VERSION": {"Fn::GetAtt": ["APIHandler.Version", "Version"]}}}
        resources.update(canary_alarms(stage, app_name, settings))
        resources["CodeDeployRole"] = codedeploy_role(stage, app_name)
    if "Warmer" in functions:
        # The warmer warms what readers reach: the alias. .chalice/config.json names the bare function, which
        # is what `chalice deploy --stage S` (one developer's stage, no alias) has.
        resources["Warmer"]["Properties"]["Environment"] = {"Variables": {
            "WARM_TARGET_FUNCTION": f"{function_name(stage, app_name, 'APIHandler')}:{ALIAS}"}}
    # API Gateway calls the alias; its permission must name the alias too.
    resources["APIHandlerInvokePermission"] = {"Properties": {"FunctionName": {"Ref": "APIHandler.Alias"}}}
    rest: dict[str, Any] = {
        # moto and AWS alike name the REST API by it; Chalice's own deploy calls it app_name too.
        "Name": app_name,
        "DefinitionBody": {"paths": route_paths(routes)},
        "MethodSettings": [{"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": settings.rate_limit,
                            "ThrottlingBurstLimit": settings.burst_limit}],
    }
    if settings.access_logs:
        rest["AccessLogSetting"] = {"DestinationArn": {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]},
                                    "Format": json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":"))}
    resources["RestAPI"] = {"Properties": rest}
    resources.update(log_resources(stage, app_name, functions, settings))
    return {"Resources": resources}


def check_alias(template: dict) -> list[str]:
    """What in a packaged template still reaches the API function past its alias (empty when nothing)."""
    problems = []
    resources = template.get("Resources", {})
    paths = resources.get("RestAPI", {}).get("Properties", {}).get("DefinitionBody", {}).get("paths", {})
    for path, methods in paths.items():
        for method, entry in methods.items():
            uri = entry.get("x-amazon-apigateway-integration", {}).get("uri")
            if uri != alias_uri():
                problems.append(f"{method.upper()} {path}: integration {json.dumps(uri)} is not the alias")
    permission = resources.get("APIHandlerInvokePermission", {}).get("Properties", {})
    if permission.get("FunctionName") != {"Ref": "APIHandler.Alias"}:
        problems.append(f"APIHandlerInvokePermission names {permission.get('FunctionName')}, not the alias")
    if resources.get("APIHandler", {}).get("Properties", {}).get("AutoPublishAlias") != ALIAS:
        problems.append(f"APIHandler has no AutoPublishAlias {ALIAS!r}")
    return problems
